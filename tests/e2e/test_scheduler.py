"""The scheduler end to end: queue classes, egress paths and their
shaping, driven by a Lua policy against the real daemon.

The policy declares four egress sources on loopback, 127.0.0.2 to
127.0.0.5 (ip2 to ip5), and one pool per provider. dnsmasq, on loopback
and without any upstream server, gives gmail.test and outlook.test MX
hosts on two sinks, 127.0.0.10 ("gmail") and 127.0.0.11 ("outlook"), both
on one port. vanity.test is a domain hosted by the "gmail" provider: its
MX host is aspmx.l.google.com (served by dnsmasq, pointing at the gmail
sink), and the policy's route handler puts it on the gmail site. The
sinks record the client address of each session, so a test sees which
egress source a message left from.

Every check follows the order of events, the fake clock (frozen where a
test counts rate tokens) and the queue summary of "sluice -bpq"; none
asserts how fast something happens. The short settle pauses before
"nothing more arrived" checks can only hide a failure, never cause one.
"""

import os
import pwd
import re
import smtplib
import time

import sluicetest
from sluicetest import Dnsmasq
from test_delivery import WAIT, DeliveryTestCase, compose

SENDER = "sender@origin.test"

GMAIL_SINK = "127.0.0.10"
OUTLOOK_SINK = "127.0.0.11"
SINK_HOSTS = [GMAIL_SINK, OUTLOOK_SINK]

# Egress sources: name -> address. The policy's pools send gmail mail
# from ip2 and outlook mail from ip3.
SOURCES = {"ip2": "127.0.0.2", "ip3": "127.0.0.3", "ip4": "127.0.0.4",
           "ip5": "127.0.0.5"}
GMAIL_SOURCE = "ip2"
OUTLOOK_SOURCE = "ip3"

GMAIL_MX = "gmail-smtp-in.l.gmail.test"
GMAIL_MX_ALT = "alt1.gmail-smtp-in.l.gmail.test"
OUTLOOK_MX = "mx.outlook.test"
VANITY_MX = "aspmx.l.google.com"

DNS_RECORDS = [
    # Two MX hosts of equal preference: the default site is both names,
    # sorted and joined with a comma.
    f"--mx-host=gmail.test,{GMAIL_MX},5",
    f"--mx-host=gmail.test,{GMAIL_MX_ALT},5",
    f"--host-record={GMAIL_MX},{GMAIL_SINK}",
    f"--host-record={GMAIL_MX_ALT},{GMAIL_SINK}",
    f"--mx-host=outlook.test,{OUTLOOK_MX},10",
    f"--host-record={OUTLOOK_MX},{OUTLOOK_SINK}",
    # A domain hosted by Google under its own name. dnsmasq serves this
    # name from its own records and forwards nothing.
    f"--mx-host=vanity.test,{VANITY_MX},1",
    f"--mx-host=vanity.test,alt1.{VANITY_MX},5",
    f"--host-record={VANITY_MX},{GMAIL_SINK}",
    f"--host-record=alt1.{VANITY_MX},{GMAIL_SINK}",
] + [
    # PTR records that match the EHLO names of the sources.
    f"--ptr-record={'.'.join(reversed(ip.split('.')))}.in-addr.arpa,"
    f"out{name[2:]}.sluice.test"
    for name, ip in SOURCES.items()
]

# The test policy. @SHAPING@ becomes a Lua table of shaping limits by
# site, and @ON_RESULT@ extra lines of the delivery_result handler.
POLICY = """
sluice.source{ name = "ip2", ip = "127.0.0.2", ehlo = "out2.sluice.test" }
sluice.source{ name = "ip3", ip = "127.0.0.3", ehlo = "out3.sluice.test" }
sluice.source{ name = "ip4", ip = "127.0.0.4", ehlo = "out4.sluice.test" }
sluice.source{ name = "ip5", ip = "127.0.0.5", ehlo = "out5.sluice.test" }
sluice.pool{ name = "gmail", sources = { "ip2" } }
sluice.pool{ name = "outlook", sources = { "ip3" } }
sluice.pool{ name = "spare", sources = { "ip4", "ip5" } }

local shaping = @SHAPING@

-- The provider whose servers an MX list names, or nil.
local function provider_of(mx)
  for _, host in ipairs(mx) do
    local name = string.lower(host.name)
    if name:find("%.google%.com$") or name:find("%.gmail%.test$") then
      return "gmail"
    end
    if name:find("%.outlook%.test$") then
      return "outlook"
    end
  end
  return nil
end

sluice.on("message", function(msg)
  local class = msg:header("X-Class")
  if class then
    msg.queue_class = class
  end
end)

sluice.on("route", function(msg, domain, mx)
  local site = provider_of(mx)
  if site == nil then
    return nil
  end
  return { site = site, pool = site, route = "to_" .. site }
end)

sluice.on("shaping", function(path)
  return shaping[path.site] or {}
end)

sluice.on("delivery_result", function(res)
  sluice.log("info", "result domain=" .. tostring(res.domain) ..
    " site=" .. tostring(res.site) .. " path=" .. tostring(res.path) ..
    " source_ip=" .. tostring(res.source_ip) ..
    " code=" .. tostring(res.code))
  @ON_RESULT@
end)
"""

# Lua lines that suspend the path of a reply containing RATE LIMITED.
SUSPEND_ON_RATE_LIMIT = """
  if tostring(res.reply):find("RATE LIMITED", 1, true) then
    sluice.suspend(res.path, 600, "the provider asked to slow down")
  end
"""

SUMMARY_LINE = re.compile(
    r"(?:total|(class|domain|site|path) (\S+)) scheduled=(\d+) ready=(\d+) "
    r"in_flight=(\d+) suspended=(\d+)"
    r"(?: until=(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d))?")

COUNT_NAMES = ("scheduled", "ready", "in_flight", "suspended")

# Seconds of real time a test waits before it checks that nothing more
# arrived. A slow machine can only make such a check pass wrongly.
SETTLE = 1.0


def lua_value(value):
    """Return value (a dict, str, bool or number) as Lua source text."""
    if isinstance(value, dict):
        fields = ", ".join(f"[{lua_value(k)}] = {lua_value(v)}"
                           for k, v in value.items())
        return "{ " + fields + " }"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def policy_text(shaping=None, on_result=""):
    return (POLICY.replace("@SHAPING@", lua_value(shaping or {}))
            .replace("@ON_RESULT@", on_result))


def parse_summary(text):
    """Parse the queue summary into {(kind, name): counts}, with the
    total under ("total", ""). counts maps each of COUNT_NAMES to an
    integer and "until" to the suspension's end or None. Any other line
    fails the test's assertion in the caller."""
    out = {}
    for line in text.splitlines():
        m = SUMMARY_LINE.fullmatch(line)
        if m is None:
            raise AssertionError(f"unexpected queue summary line {line!r} "
                                 f"in:\n{text}")
        kind, name = m.group(1) or "total", m.group(2) or ""
        counts = dict(zip(COUNT_NAMES, map(int, m.group(3, 4, 5, 6))))
        counts["until"] = m.group(7)
        out[(kind, name)] = counts
    return out


ZERO = dict.fromkeys(COUNT_NAMES, 0)


class SchedulerTestCase(DeliveryTestCase):
    """A daemon with the test policy, and the two provider sinks."""

    @classmethod
    def setUpClass(cls):
        cls.dns = Dnsmasq(DNS_RECORDS).start()

    @classmethod
    def tearDownClass(cls):
        cls.dns.stop()

    def start(self, policy=None, settings="", frozen=False):
        """Start both sinks and a daemon with policy (None: no policy);
        return the daemon and the sinks as (gmail, outlook). frozen
        stops the daemon's clock before any mail arrives."""
        gmail, outlook = self.sinks_on_one_port(SINK_HOSTS)
        if policy is not None:
            settings = "lua_policy = policy.lua\n" + settings
        d = self.relay_daemon(self.dns.settings() +
                              f"delivery_port = {gmail.port}\n"
                              "outbound_connections_max_per_host = 0\n" +
                              settings)
        if policy is not None:
            with open(os.path.join(d.dir, "policy.lua"), "w") as f:
                f.write(policy)
        d.start()
        if frozen:
            self.control(d, "clock freeze")
        return d, gmail, outlook

    def control(self, d, command):
        """Run a control command that must succeed; return its output
        without the final "ok"."""
        reply = d.control(command)
        self.assertTrue(reply.endswith("ok\n"),
                        f"control command {command!r} failed: {reply!r}")
        return reply[:-len("ok\n")]

    def summary_text(self, d):
        """Return the queue summary from the control socket, which sends
        each line of it after "out ", then the exit status as "exit 0"."""
        lines = self.control(d, "queue-summary").splitlines()
        self.assertEqual(lines[-1:], ["exit 0"], lines)
        lines = lines[:-1]
        for line in lines:
            self.assertTrue(line.startswith("out "), lines)
        return "".join(line[len("out "):] + "\n" for line in lines)

    def summary(self, d):
        return parse_summary(self.summary_text(d))

    def counts(self, d, kind, name):
        """The counts of one summary line; zeros when it is not listed."""
        return self.summary(d).get((kind, name), dict(ZERO, until=None))

    def path_counts(self, d, site, source):
        """The counts of the path from source (name or address) to site,
        with "name" added; zeros when the path is not listed."""
        summary = self.summary(d)
        for key in (f"{source}/{site}", f"{SOURCES[source]}/{site}"):
            if ("path", key) in summary:
                return dict(summary[("path", key)], name=key)
        return dict(ZERO, until=None, name=None)

    def wait_line(self, d, read, label, what, expected):
        """Wait until read() returns a summary line with the expected
        counts; return it. label names the line in the failure."""
        def matches():
            line = read()
            if all(line[k] == v for k, v in expected.items()):
                return line
            return None
        try:
            return sluicetest.wait_for(matches, WAIT, what)
        except AssertionError as e:
            if not str(e).startswith("timed out"):
                raise
            raise AssertionError(
                f"timed out waiting for {what}: {label} should have "
                f"{expected}; summary:\n{self.summary_text(d)}") from None

    def wait_counts(self, d, kind, name, what, **expected):
        """Wait until the summary line (kind, name) has the expected
        counts (absent lines count as zeros); return the line."""
        return self.wait_line(d, lambda: self.counts(d, kind, name),
                              f"{kind} {name}", what, expected)

    def wait_path(self, d, site, source, what, **expected):
        """Wait until the path from source to site has the expected
        counts; return its line."""
        return self.wait_line(d, lambda: self.path_counts(d, site, source),
                              f"path {source}/{site}", what, expected)

    def smtp(self, d):
        client = smtplib.SMTP("127.0.0.1", d.port,
                              local_hostname="client.test", timeout=WAIT)
        self.addCleanup(client.close)
        return client

    def submit(self, client, recipient, index, queue_class=None):
        """Send one message to one recipient on an open session; return
        its id. queue_class goes into an X-Class header field, which the
        policy turns into the message's class."""
        body = f"message {index}\r\n".encode()
        message = compose(index, [recipient], body)
        if queue_class is not None:
            message = f"X-Class: {queue_class}\r\n".encode() + message
        return self.send_on(client, SENDER, [recipient], message)

    def submit_many(self, d, recipients, queue_class=None, start=0):
        """Send one message to each recipient over one session; return
        the ids in order."""
        client = self.smtp(d)
        ids = [self.submit(client, rcpt, start + i, queue_class)
               for i, rcpt in enumerate(recipients)]
        client.quit()
        return ids

    def wait_deferred(self, d, ids):
        """Wait until each message in ids has a deferral ("==") line in
        mainlog, so that none is still before its first attempt, which
        the summary also counts as scheduled."""
        for msgid in ids:
            self.wait_for_line(d, msgid, "== ")

    def assert_count_stays(self, sink, count):
        """Check that sink has count messages, and still has after a
        settle pause."""
        self.assertEqual(len(sink.messages()), count)
        time.sleep(SETTLE)
        self.assertEqual(len(sink.messages()), count)

    def log_lines(self, d, pattern):
        return [line for line in d.log().splitlines()
                if re.search(pattern, line)]


class PriorityTest(SchedulerTestCase):

    # Newsletters queued ahead of the critical message, far more than
    # the five deliveries it may wait for, and more than
    # delivery_attempts_max (500), so that most wait in the due lists.
    BACKLOG = 1000

    def test_critical_overtakes_newsletter_backlog(self):
        policy = policy_text({"gmail": {"max_connections": 1}})
        d, gmail, _ = self.start(policy)
        # The first delivery waits at MAIL until the backlog and the
        # critical message are queued behind it.
        gmail.add_rule("mail", action="hold", times=1)
        backlog = [f"news{i}@gmail.test" for i in range(self.BACKLOG)]
        self.submit_many(d, backlog, "newsletter")
        gmail.wait_for_held(1)
        self.assertEqual(len(gmail.messages()), 0)
        client = self.smtp(d)
        self.submit(client, "vip@gmail.test", 9999, "critical")
        client.quit()
        # The summary counts every accepted message: the critical one is
        # scheduled or ready (a full ready queue leaves it scheduled). A
        # miscount fails the test after the order check below.
        def all_counted():
            summary = self.summary(d)
            critical = summary.get(("class", "critical"), ZERO)
            total = summary[("total", "")]
            queued = total["scheduled"] + total["ready"] + total["in_flight"]
            return (critical["scheduled"] + critical["ready"] == 1 and
                    queued == self.BACKLOG + 1)
        try:
            sluicetest.wait_for(all_counted, WAIT / 4,
                                "every message in the queue summary")
            miscount = None
        except AssertionError:
            miscount = (f"the queue summary misses accepted messages:\n"
                        f"{self.summary_text(d)}")
        before = len(gmail.messages())

        gmail.release()
        got = gmail.wait_for_messages(self.BACKLOG + 1, timeout=WAIT * 2)
        order = [m["rcpt_to"] for m in got]
        position = order.index(["vip@gmail.test"]) + 1 - before
        self.assertLessEqual(position, 5,
                             f"the critical message was delivery number "
                             f"{position} after its acceptance")
        self.assertEqual(sorted(r for rcpts in order for r in rcpts),
                         sorted(backlog + ["vip@gmail.test"]))
        self.assertIsNone(miscount, miscount)
        self.assertEqual(gmail.max_active_by_peer, {SOURCES[GMAIL_SOURCE]: 1})


class RateTest(SchedulerTestCase):

    RATE = 2        # messages per second
    BURST = 3
    MESSAGES = 11

    def wait_stable(self, d, sink, delivered):
        """Wait until nothing is in flight on the gmail path and every
        message is either at the sink or ready on the path. Then check
        that exactly delivered messages arrived."""
        def stable():
            line = self.path_counts(d, "gmail", GMAIL_SOURCE)
            arrived = len(sink.messages())
            if line["in_flight"] == 0 and line["scheduled"] == 0 and \
                    arrived + line["ready"] == self.MESSAGES:
                return line
            return None
        line = sluicetest.wait_for(stable, WAIT, "the gmail path to wait "
                                   "for rate tokens")
        self.assertEqual(len(sink.messages()), delivered,
                         f"path counts: {line}")
        self.assertEqual(line["ready"], self.MESSAGES - delivered)
        time.sleep(SETTLE)
        self.assertEqual(len(sink.messages()), delivered)

    def test_frozen_clock_lets_burst_then_rate(self):
        policy = policy_text({"gmail": {
            "max_message_rate": f"{self.RATE}/s", "burst": self.BURST}})
        d, gmail, _ = self.start(policy, frozen=True)
        self.submit_many(d, [f"r{i}@gmail.test"
                             for i in range(self.MESSAGES)])
        gmail.wait_for_messages(self.BURST)
        self.wait_stable(d, gmail, self.BURST)

        # "sluice -bpq" prints what the control socket returns.
        listing = d.run("-bpq")
        self.assertEqual(parse_summary(listing.stdout.decode()),
                         self.summary(d))

        delivered = self.BURST
        while delivered < self.MESSAGES:
            self.control(d, "clock advance 1")
            delivered = min(delivered + self.RATE, self.MESSAGES)
            gmail.wait_for_messages(delivered)
            self.wait_stable(d, gmail, delivered)
        peers = {m["peer"] for m in gmail.messages()}
        self.assertEqual(peers, {SOURCES[GMAIL_SOURCE]})
        self.assertEqual(listing.returncode, 0, listing)


class ConnectionsTest(SchedulerTestCase):

    MAX_CONNECTIONS = 3
    MESSAGES = 10

    def test_held_sessions_never_exceed_cap(self):
        policy = policy_text({"gmail": {
            "max_connections": self.MAX_CONNECTIONS}})
        d, gmail, _ = self.start(policy)
        gmail.add_rule("mail", action="hold", times=None)
        self.submit_many(d, [f"r{i}@gmail.test"
                             for i in range(self.MESSAGES)])
        gmail.wait_for_held(self.MAX_CONNECTIONS)
        line = self.wait_path(
            d, "gmail", GMAIL_SOURCE, "the path to fill its connections",
            in_flight=self.MAX_CONNECTIONS,
            ready=self.MESSAGES - self.MAX_CONNECTIONS)
        time.sleep(SETTLE)
        source_ip = SOURCES[GMAIL_SOURCE]
        self.assertEqual(gmail.active_by_peer.get(source_ip),
                         self.MAX_CONNECTIONS, line)
        self.assertEqual(gmail.max_active_by_peer,
                         {source_ip: self.MAX_CONNECTIONS})

        gmail.release()
        gmail.wait_for_messages(self.MESSAGES)
        self.assertEqual(gmail.max_active_by_peer,
                         {source_ip: self.MAX_CONNECTIONS})
        self.assertEqual({m["peer"] for m in gmail.messages()}, {source_ip})


class FailingProviderTest(SchedulerTestCase):

    def test_421_provider_does_not_block_other(self):
        d, gmail, outlook = self.start(policy_text())
        outlook.add_rule("connect", 421, times=None)

        for batch in (1, 2):
            start = batch * 100
            ids = self.submit_many(d, [f"o{start + i}@outlook.test"
                                       for i in range(3)], start=start)
            self.wait_deferred(d, ids)
            self.wait_counts(d, "domain", "outlook.test",
                             f"batch {batch} to outlook to be deferred",
                             scheduled=3 * batch, ready=0, in_flight=0)
            self.submit_many(d, [f"g{start + i}@gmail.test"
                                 for i in range(3)], start=start + 50)
            gmail.wait_for_messages(3 * batch)

        self.assertEqual(len(outlook.messages()), 0)
        self.assertGreater(outlook.connections, 0)
        self.assertEqual(len(gmail.messages()), 6)
        self.assertEqual(self.counts(d, "domain", "outlook.test")
                         ["scheduled"], 6)
        self.assertEqual({m["peer"] for m in gmail.messages()},
                         {SOURCES[GMAIL_SOURCE]})


class ClassRetryTest(SchedulerTestCase):

    def test_class_retry_rule_replaces_default(self):
        # Without rules a deferred message waits 15 minutes, and the
        # class's own rule sets one minute.
        policy = policy_text() + (
            'sluice.class{ name = "quick", priority = 20, '
            'retry = "F,1h,1m" }\n')
        d, gmail, _ = self.start(policy, frozen=True)
        gmail.add_rule("rcpt", 451, times=None)
        [msgid] = self.submit_many(d, ["late@gmail.test"],
                                   queue_class="quick")
        self.wait_for_line(d, msgid, "== ")
        self.wait_idle(d)

        self.control(d, "clock advance 59")
        time.sleep(SETTLE)
        self.assertEqual(len([line for line in self.lines_of(d, msgid)
                              if line.startswith("== ")]), 1)
        self.control(d, "clock advance 2")
        self.wait_for_line(d, msgid, "== ", count=2)


class SuspendTest(SchedulerTestCase):

    def test_result_handler_suspends_path(self):
        # The clock is frozen, so the suspension ends exactly when the
        # test advances past it.
        d, gmail, outlook = self.start(
            policy_text(on_result=SUSPEND_ON_RATE_LIMIT), frozen=True)
        # Every attempt of the first message gets the reply, whichever
        # of the two MX hosts it tries.
        gmail.add_rule("rcpt", 451, times=None, match="first@",
                       text="4.7.28 RATE LIMITED, slow down")
        [first] = self.submit_many(d, ["first@gmail.test"])
        self.wait_for_line(d, first, "== first@gmail.test")
        # The handler has run once its result line is in mainlog.
        sluicetest.wait_for(
            lambda: self.log_lines(d, r"result domain=gmail\.test "
                                      r"site=gmail .* code=451"),
            WAIT, "the delivery_result handler to see the 451")

        held = [f"held{i}@gmail.test" for i in range(3)]
        self.submit_many(d, held, start=10)
        self.submit_many(d, ["o1@outlook.test", "o2@outlook.test"],
                         start=20)
        outlook.wait_for_messages(2)
        line = self.wait_path(d, "gmail", GMAIL_SOURCE,
                              "mail to wait on the suspended path",
                              ready=3, suspended=3, in_flight=0)
        self.assertIsNotNone(line["until"])
        self.assert_count_stays(gmail, 0)
        self.assertEqual(self.path_counts(d, "outlook", OUTLOOK_SOURCE)
                         ["until"], None)

        # The suspension lasts 600 s, so one second short of it nothing
        # may arrive.
        self.control(d, "clock advance 599")
        self.assert_count_stays(gmail, 0)
        self.control(d, "clock advance 2")
        got = gmail.wait_for_messages(3)
        self.assertEqual(sorted(m["rcpt_to"][0] for m in got), held)
        line = self.path_counts(d, "gmail", GMAIL_SOURCE)
        self.assertIsNone(line["until"], line)

    def test_operator_suspend_and_resume(self):
        d, gmail, _ = self.start(policy_text())
        # One delivery first, so that the path exists.
        self.submit_many(d, ["first@gmail.test"])
        gmail.wait_for_messages(1)
        suspend = d.run("-Msuspend", GMAIL_SOURCE, "gmail", "300")
        self.submit_many(d, ["a@gmail.test", "b@gmail.test"], start=1)
        line = self.wait_path(d, "gmail", GMAIL_SOURCE,
                              "mail to wait on the suspended path",
                              ready=2, suspended=2)
        self.assertIsNotNone(line["until"])
        self.assert_count_stays(gmail, 1)
        # The log names who asked: the user running the command.
        user = pwd.getpwuid(os.getuid()).pw_name
        suspended = self.log_lines(d, rf"(?i)^(?=.*\bsuspend)"
                                      rf"(?=.*\bgmail\b)(?=.*\b{user}\b)")
        self.assertEqual(len(suspended), 1, d.log())

        resume = d.run("-Mresume", GMAIL_SOURCE, "gmail")
        gmail.wait_for_messages(3)
        resumed = self.log_lines(d, rf"(?i)^(?=.*\bresume)"
                                    rf"(?=.*\bgmail\b)(?=.*\b{user}\b)")
        self.assertEqual(len(resumed), 1, d.log())

        # The exit status is checked last, after what it reports on.
        self.assertEqual(suspend.returncode, 0, suspend)
        self.assertEqual(resume.returncode, 0, resume)


class RouteTest(SchedulerTestCase):

    def test_vanity_domain_routed_to_gmail_site(self):
        # One connection, so that one message is in flight and the other
        # waits while the sink keeps the first waiting at MAIL.
        d, gmail, outlook = self.start(
            policy_text({"gmail": {"max_connections": 1}}))
        gmail.add_rule("mail", action="hold", times=None)
        [vanity] = self.submit_many(d, ["v@vanity.test"])
        self.submit_many(d, ["g@gmail.test", "o@outlook.test"], start=1)
        outlook.wait_for_messages(1)
        site = self.wait_counts(d, "site", "gmail",
                                "both gmail messages on the gmail site",
                                scheduled=0, in_flight=1, ready=1)
        summary = self.summary(d)
        self.assertNotIn(("site", VANITY_MX), summary)
        vanity_counts = summary.get(("domain", "vanity.test"))
        self.assertIsNotNone(vanity_counts, summary)
        self.assertEqual(vanity_counts["in_flight"] +
                         vanity_counts["ready"], 1, site)

        gmail.release()
        got = gmail.wait_for_messages(2)
        by_rcpt = {m["rcpt_to"][0]: m for m in got}
        self.assertEqual(by_rcpt["v@vanity.test"]["peer"],
                         SOURCES[GMAIL_SOURCE])
        self.assertEqual(by_rcpt["v@vanity.test"]["helo"],
                         "out2.sluice.test")
        self.assertEqual(outlook.messages()[0]["peer"],
                         SOURCES[OUTLOOK_SOURCE])
        [delivered] = self.wait_for_line(d, vanity, "=> v@vanity.test ")
        self.assertIn(" R=to_gmail ", delivered)
        self.assertRegex(delivered, rf" H={re.escape(VANITY_MX)} "
                                    rf"\[{re.escape(GMAIL_SINK)}\]")
        self.assertTrue(self.log_lines(
            d, r"result domain=vanity\.test site=gmail "
               r"path=\S+/gmail source_ip=127\.0\.0\.2 code=250"), d.log())

    def test_default_site_is_mx_names(self):
        d, gmail, _ = self.start(None)
        gmail.add_rule("mail", action="hold", times=None)
        self.submit_many(d, ["g@gmail.test", "v@vanity.test"])
        gmail_site = ",".join(sorted([GMAIL_MX, GMAIL_MX_ALT]))
        for site in (gmail_site, VANITY_MX):
            self.wait_counts(d, "site", site, f"mail on site {site}",
                             scheduled=0, in_flight=1)
        gmail.release()
        gmail.wait_for_messages(2)


class DefaultClassTest(SchedulerTestCase):

    def test_class_by_origin_without_policy_class(self):
        d, _, outlook = self.start(policy_text())
        outlook.add_rule("mail", 451, times=None)
        # Over SMTP without authentication: personal.
        ids = self.submit_many(d, ["smtp@outlook.test"])
        # A local submission on the command line: transactional.
        local = d.run("-i", "-f", SENDER, "local@outlook.test",
                      input=b"Subject: local\n\nlocal submission\n")
        self.assertEqual(local.returncode, 0, local)
        sluicetest.wait_for(
            lambda: len(self.log_lines(d, r" == \S+@outlook\.test ")) >= 2,
            WAIT, "both messages to be deferred once")
        self.wait_deferred(d, ids)
        self.wait_counts(d, "domain", "outlook.test",
                         "both messages to be deferred",
                         scheduled=2, ready=0, in_flight=0)
        summary = self.summary(d)
        self.assertEqual(summary[("class", "personal")]["scheduled"], 1,
                         summary)
        self.assertEqual(summary[("class", "transactional")]["scheduled"],
                         1, summary)


class RestartTest(SchedulerTestCase):

    # Messages by class; None is a message without X-Class, which is
    # personal because it came over SMTP without authentication.
    CLASSES = {"critical": 2, "newsletter": 3, "transactional": 1,
               None: 2}

    def test_sigkill_keeps_classes_and_queues(self):
        d, _, outlook = self.start(policy_text())
        outlook.add_rule("mail", 451, times=None)
        client = self.smtp(d)
        ids = []
        for queue_class, count in self.CLASSES.items():
            for _ in range(count):
                ids.append(self.submit(client, f"r{len(ids)}@outlook.test",
                                       len(ids), queue_class))
        client.quit()
        total = len(ids)
        self.wait_deferred(d, ids)
        self.wait_counts(d, "domain", "outlook.test",
                         "every message to be deferred",
                         scheduled=total, ready=0, in_flight=0)
        before = {key: counts for key, counts in self.summary(d).items()
                  if key[0] in ("class", "domain")}
        expected = {"critical": 2, "newsletter": 3, "transactional": 1,
                    "personal": 2}
        for name, count in expected.items():
            self.assertEqual(before[("class", name)]["scheduled"], count,
                             before)

        d.kill()
        for stream in (d.proc.stdout, d.proc.stderr):
            stream.close()
        d.start()

        def rebuilt():
            now = {key: counts for key, counts in self.summary(d).items()
                   if key[0] in ("class", "domain")}
            return now if now == before else None
        try:
            sluicetest.wait_for(rebuilt, WAIT, "the queues to be rebuilt")
        except AssertionError:
            raise AssertionError(
                f"queues after the restart differ; before: {before}, "
                f"now:\n{self.control(d, 'queue-summary')}") from None

        # The rebuilt queues deliver once the provider accepts again. An
        # attempt that the restart started may still end in a deferral
        # after the first advance, so the clock moves up to three times.
        outlook.clear_rules()
        for _ in range(3):
            self.control(d, "clock advance 3600")
            try:
                outlook.wait_for_messages(total, timeout=WAIT / 3)
                break
            except AssertionError:
                pass
        got = outlook.messages()
        self.assertEqual(sorted(m["rcpt_to"][0] for m in got),
                         sorted(f"r{i}@outlook.test" for i in range(total)))


if __name__ == "__main__":
    sluicetest.main()

/*
 * policy_calls.c - the cost of one call into the Lua policy, per event,
 * with a trivial handler and with a realistic classifier.
 *
 * Usage: policy_calls [CALLS]
 *
 * Each figure is the mean over CALLS calls (default 200000) after 1000
 * warm-up calls, measured with the monotonic clock around the whole
 * run. Two budget mechanisms are compared:
 *
 *   jit-on   what sluice runs: the JIT on, the watchdog of
 *            lua/policy_budget.c armed around every call;
 *   jit-off  the JIT off and a count hook every 1000 instructions that
 *            reads the clock, the usual way to bound Lua code.
 *
 * The policy is written to a temporary folder and loaded through the
 * same code the daemon uses.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#include "clock.h"
#include "config.h"
#include "log.h"
#include "policy.h"
#include "policy_private.h"
#include "spool_header.h"
#include "util.h"

#define BENCH_HOOK_INSTRUCTIONS	1000
#define BENCH_WARMUP		1000

static const char bench_policy[] =
    "local classes = {\n"
    "  { pattern = 'password', class = 'critical' },\n"
    "  { pattern = 'receipt', class = 'transactional' },\n"
    "  { pattern = 'invoice', class = 'transactional' },\n"
    "  { pattern = 'offer', class = 'newsletter' },\n"
    "  { pattern = 'newsletter', class = 'newsletter' },\n"
    "}\n"
    "local blocked = { ['spam@example.com'] = true }\n"
    "local counts = {}\n"
    "sluice.on('connect', function(conn) end)\n"
    "sluice.on('mail', function(tx, sender)\n"
    "  if blocked[sender] then return 'reject', 550, 'blocked' end\n"
    "end)\n"
    "sluice.on('rcpt', function(tx, rcpt) end)\n"
    "sluice.on('data', function(tx) end)\n"
    "sluice.on('message', function(msg)\n"
    "  if not realistic then return end\n"
    "  local subject = (msg:header('Subject') or ''):lower()\n"
    "  local class = 'personal'\n"
    "  for _, c in ipairs(classes) do\n"
    "    if subject:find(c.pattern, 1, true) then class = c.class break end\n"
    "  end\n"
    "  if msg:header('List-Unsubscribe') then class = 'newsletter' end\n"
    "  local tenant = msg.sender:match('@(.+)$') or 'unknown'\n"
    "  msg.queue_class = class\n"
    "  msg.tenant = tenant:gsub('[^%w%.%-]', '_')\n"
    "  local key = tenant .. ':' .. class\n"
    "  counts[key] = (counts[key] or 0) + #msg.recipients\n"
    "  msg:add_header('X-Sluice-Class', class)\n"
    "end)\n";

static const struct policy_conn bench_conn = {
	.ip = "192.0.2.1", .port = 40000, .local_ip = "127.0.0.1",
	.local_port = 25, .helo = "client.example",
};

static void
bench_hook(lua_State *L, lua_Debug *ar)
{
	static volatile uint64_t sink;

	/* What a count-hook budget does: read the clock, compare. */
	sink += clock_monotonic_usec();
}

/* Switches the state to the JIT-off, count-hook mechanism. */
static void
bench_jit_off(struct policy_state *ps)
{
	lua_State *L = ps->L;

	lua_getfield(L, LUA_REGISTRYINDEX, "_LOADED");
	lua_getfield(L, -1, "jit");
	lua_getfield(L, -1, "off");
	lua_call(L, 0, 0);
	lua_pop(L, 2);
	lua_sethook(L, bench_hook, LUA_MASKCOUNT, BENCH_HOOK_INSTRUCTIONS);
}

static void
bench_set_realistic(struct policy_state *ps, bool on)
{
	lua_State *L = ps->L;

	lua_rawgeti(L, LUA_REGISTRYINDEX, ps->env_ref);
	lua_pushboolean(L, on);
	lua_setfield(L, -2, "realistic");
	lua_pop(L, 1);
}

/* One message with the header fields of a typical bulk mail. */
static void
bench_message_header(struct spool_header *h)
{
	static const char *const fields[] = {
		"Received: from [192.0.2.1] (helo=client.example)\n\tby mx\n",
		"From: Shop <news@shop.example>\n",
		"To: bob@example.net\n",
		"Subject: Spring offers for you\n",
		"List-Unsubscribe: <mailto:u@shop.example>\n",
		"Message-ID: <abc@shop.example>\n",
	};

	memset(h, 0, sizeof(*h));
	for (size_t i = 0; i < ARRAY_SIZE(fields); i++)
		spool_header_add_field(h, spool_field_flag_for_name(fields[i],
		    strcspn(fields[i], ":")), fields[i], strlen(fields[i]));
}

enum bench_event { BENCH_MAIL, BENCH_RCPT, BENCH_MESSAGE };

static double
bench_run(struct policy_state *ps, enum bench_event event, long calls)
{
	const char *recipients[] = { "bob@example.net" };
	struct policy_tx tx = { "alice@example.org", recipients, 1 };
	struct policy_verdict v;
	uint64_t start = 0;

	for (long i = -BENCH_WARMUP; i < calls; i++) {
		if (i == 0)
			start = clock_monotonic_usec();
		if (event == BENCH_MAIL) {
			policy_mail(ps, &bench_conn, &tx, tx.sender, &v);
		} else if (event == BENCH_RCPT) {
			policy_rcpt(ps, &bench_conn, &tx, recipients[0], &v);
		} else {
			struct spool_header h;
			struct policy_message msg = { .id = "1tt1Jd-00000000CXd-1jGj",
			    .sender = "news@shop.example", .recipients = recipients,
			    .recipient_count = 1, .size = 2048,
			    .client_ip = "192.0.2.1", .header = &h };

			bench_message_header(&h);
			policy_message(ps, &msg, &v);
			spool_header_free(&h);
		}
		if (v.action == POLICY_FAILED)
			fatalx("the benchmark policy failed; see the log");
	}
	return (double)(clock_monotonic_usec() - start) / (double)calls;
}

/* The cost of building and freeing the message's header alone, which
 * the message figures include. */
static double
bench_header_only(long calls)
{
	uint64_t start = clock_monotonic_usec();

	for (long i = 0; i < calls; i++) {
		struct spool_header h;

		bench_message_header(&h);
		spool_header_free(&h);
	}
	return (double)(clock_monotonic_usec() - start) / (double)calls;
}

int
main(int argc, char **argv)
{
	char dir[] = "/tmp/sluice-bench-XXXXXX";
	char path[128], conf[512];
	struct config *config = NULL;
	char *error = NULL;
	long calls = argc > 1 ? atol(argv[1]) : 200000;
	FILE *f;

	if (calls <= 0 || mkdtemp(dir) == NULL)
		fatalx("usage: policy_calls [CALLS]");
	snprintf(path, sizeof(path), "%s/policy.lua", dir);
	if ((f = fopen(path, "w")) == NULL)
		fatal("cannot write %s", path);
	fputs(bench_policy, f);
	fclose(f);
	snprintf(conf, sizeof(conf), "primary_hostname = bench.example\n"
	    "spool_directory = %s\nlua_policy = policy.lua\n", dir);
	snprintf(path, sizeof(path), "%s/sluice.conf", dir);
	if ((f = fopen(path, "w")) == NULL)
		fatal("cannot write %s", path);
	fputs(conf, f);
	fclose(f);
	if (config_load(path, NULL, 0, &config, &error) < 0)
		fatalx("%s", error);

	printf("calls per figure: %ld; header build alone: %.3f us\n", calls,
	    bench_header_only(calls));
	for (int mode = 0; mode < 2; mode++) {
		struct policy_state *ps;

		if (policy_start(NULL, config, &error) < 0)
			fatalx("%s", error);
		ps = policy_current();
		if (mode == 1)
			bench_jit_off(ps);
		bench_set_realistic(ps, false);
		printf("%s mail trivial: %.3f us\n", mode == 0 ? "jit-on" :
		    "jit-off", bench_run(ps, BENCH_MAIL, calls));
		printf("%s rcpt trivial: %.3f us\n", mode == 0 ? "jit-on" :
		    "jit-off", bench_run(ps, BENCH_RCPT, calls));
		printf("%s message trivial: %.3f us\n", mode == 0 ? "jit-on" :
		    "jit-off", bench_run(ps, BENCH_MESSAGE, calls));
		bench_set_realistic(ps, true);
		printf("%s message classifier: %.3f us\n", mode == 0 ? "jit-on" :
		    "jit-off", bench_run(ps, BENCH_MESSAGE, calls));
		policy_state_unref(ps);
		policy_stop();
	}
	config_free(config);
	snprintf(conf, sizeof(conf), "rm -rf '%s'", dir);
	return system(conf) == 0 ? 0 : 1;
}

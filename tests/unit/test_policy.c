/*
 * test_policy.c - unit tests of the Lua policy engine (lua/): object
 * classes and stale references, values in and out of handlers, the
 * sandbox, the time budget with the JIT on and off, the memory cap and
 * reloading.
 *
 * Each test writes its policy into a fresh temporary folder, starts the
 * engine on it and calls handlers directly; log lines are caught with
 * log_set_divert() so that tests can check what operators would see.
 * Time budgets are short (lua_time_limit = 50) so that runaway handlers
 * end quickly; no test checks how long anything took.
 */
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <lauxlib.h>
#include <lua.h>

#include "config.h"
#include "log.h"
#include "policy.h"
#include "policy_private.h"
#include "spool_header.h"
#include "util.h"

struct fixture {
	char dir[64];
	struct config *config;
	struct policy_state *ps;	/* a reference of the test's own */
};

/* Log lines caught since the last reset, joined by newlines. */
static char logged[65536];

static void
catch_log(unsigned targets, const char *msgid, const char *text)
{
	size_t used = strlen(logged);

	snprintf(logged + used, sizeof(logged) - used, "%s%s%s%s\n",
	    (targets & LOG_PANIC) != 0 ? "PANIC " : "",
	    msgid != NULL ? msgid : "", msgid != NULL ? " " : "", text);
}

static int
remove_entry(const char *path, const struct stat *st, int flag,
    struct FTW *ftw)
{
	return remove(path);
}

static void
write_file(const struct fixture *f, const char *name, const char *text)
{
	char path[128];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", f->dir, name);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
}

/* Writes sluice.conf (with extra settings) and policy.lua, and loads
 * the configuration. */
static void
prepare(struct fixture *f, const char *policy, const char *settings)
{
	char conf[1024], path[128];
	char *error = NULL;

	snprintf(conf, sizeof(conf), "primary_hostname = test.example\n"
	    "spool_directory = %s/spool\nlua_policy = policy.lua\n"
	    "lua_time_limit = 50\n%s", f->dir, settings);
	write_file(f, "sluice.conf", conf);
	write_file(f, "policy.lua", policy);
	snprintf(path, sizeof(path), "%s/sluice.conf", f->dir);
	if (config_load(path, NULL, 0, &f->config, &error) < 0)
		fail_msg("config_load: %s", error);
}

/* Starts the engine; returns 0 or -1 with *error set. */
static int
start(struct fixture *f, char **error)
{
	if (policy_start(NULL, f->config, error) < 0)
		return -1;
	f->ps = policy_current();
	return 0;
}

static void
start_ok(struct fixture *f, const char *policy, const char *settings)
{
	char *error = NULL;

	prepare(f, policy, settings);
	if (start(f, &error) < 0)
		fail_msg("policy_start: %s", error);
	assert_non_null(f->ps);
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/sluice-policy-XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	logged[0] = '\0';
	log_set_divert(catch_log);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	policy_state_unref(f->ps);
	policy_stop();
	config_free(f->config);
	log_set_divert(NULL);
	nftw(f->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static const struct policy_conn test_conn = {
	.ip = "192.0.2.1", .port = 40000, .local_ip = "127.0.0.1",
	.local_port = 25, .helo = "client.example",
};

/* Calls the mail handler with sender and returns the verdict. */
static struct policy_verdict
mail(struct policy_state *ps, const char *sender)
{
	const char *recipients[] = { "bob@example.net" };
	struct policy_tx tx = { .sender = sender, .recipients = recipients,
	    .recipient_count = 1 };
	struct policy_verdict v;

	policy_mail(ps, &test_conn, &tx, sender, &v);
	return v;
}

/* A message with two header fields, one folded, for the message
 * handler. */
struct test_message {
	struct spool_header header;
	struct policy_message msg;
	const char *recipients[2];
};

static void
message_init(struct test_message *t)
{
	static const char subject[] = "Subject: hello\n  world\n";
	static const char to[] = "To: bob@example.net\n";
	static const char received[] = "Received: from a\n";

	memset(t, 0, sizeof(*t));
	spool_header_add_field(&t->header, 'P', received, strlen(received));
	spool_header_add_field(&t->header, ' ', subject, strlen(subject));
	spool_header_add_field(&t->header, 'T', to, strlen(to));
	t->recipients[0] = "bob@example.net";
	t->recipients[1] = "carol@example.net";
	t->msg.id = "1tt1Jd-00000000CXd-1jGj";
	t->msg.sender = "alice@example.org";
	t->msg.recipients = t->recipients;
	t->msg.recipient_count = 2;
	t->msg.size = 1234;
	t->msg.client_ip = "192.0.2.1";
	t->msg.header = &t->header;
}

/* The text of a live field called name, or NULL. */
static const char *
live_field(const struct spool_header *h, const char *name)
{
	for (size_t i = 0; i < h->fields_count; i++)
		if (h->fields[i].flag != SPOOL_FIELD_DELETED &&
		    strncasecmp(h->fields[i].text, name, strlen(name)) == 0)
			return h->fields[i].text;
	return NULL;
}

/* ---- events, values in and out ---- */

static void
test_no_handler_continues(void **state)
{
	struct fixture *f = *state;
	struct policy_verdict v;

	start_ok(f, "-- nothing\n", "");
	v = mail(f->ps, "alice@example.org");
	assert_int_equal(v.action, POLICY_CONTINUE);
	assert_false(policy_has_handler(f->ps, "mail"));
}

static void
test_verdicts(void **state)
{
	static const struct {
		const char *sender;
		enum policy_action action;
		int code;
		const char *text;
	} cases[] = {
		{ "none@x", POLICY_CONTINUE, 0, "" },
		{ "reject@x", POLICY_REJECT, 550, "go away" },
		{ "reject-default@x", POLICY_REJECT, 550,
		    "Administrative prohibition" },
		{ "defer@x", POLICY_DEFER, 450, "later" },
		{ "defer-default@x", POLICY_DEFER, 451,
		    "Temporary local problem - please try later" },
		{ "number@x", POLICY_FAILED, 0, "" },
		{ "bad-word@x", POLICY_FAILED, 0, "" },
		{ "relay@x", POLICY_FAILED, 0, "" },
		{ "reject-450@x", POLICY_FAILED, 0, "" },
		{ "defer-550@x", POLICY_FAILED, 0, "" },
		{ "crlf@x", POLICY_FAILED, 0, "" },
		{ "table-text@x", POLICY_FAILED, 0, "" },
		{ "raise@x", POLICY_FAILED, 0, "" },
	};
	struct fixture *f = *state;

	start_ok(f,
	    "local r = {\n"
	    "  ['reject@x'] = function() return 'reject', 550, 'go away' end,\n"
	    "  ['reject-default@x'] = function() return 'reject' end,\n"
	    "  ['defer@x'] = function() return 'defer', 450, 'later' end,\n"
	    "  ['defer-default@x'] = function() return 'defer' end,\n"
	    "  ['number@x'] = function() return 42 end,\n"
	    "  ['bad-word@x'] = function() return 'accept' end,\n"
	    "  ['relay@x'] = function() return 'relay' end,\n"
	    "  ['reject-450@x'] = function() return 'reject', 450, 'x' end,\n"
	    "  ['defer-550@x'] = function() return 'defer', 550, 'x' end,\n"
	    "  ['crlf@x'] = function() return 'reject', 550, 'a\\r\\n250 ok' end,\n"
	    "  ['table-text@x'] = function() return 'reject', 550, {} end,\n"
	    "  ['raise@x'] = function() error('broken policy') end,\n"
	    "}\n"
	    "sluice.on('mail', function(tx, sender)\n"
	    "  local fn = r[sender]\n"
	    "  if fn then return fn() end\n"
	    "end)\n", "");

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct policy_verdict v = mail(f->ps, cases[i].sender);

		if (v.action != cases[i].action)
			fail_msg("%s: got action %d, want %d", cases[i].sender,
			    (int)v.action, (int)cases[i].action);
		if (cases[i].action == POLICY_REJECT ||
		    cases[i].action == POLICY_DEFER) {
			assert_int_equal(v.code, cases[i].code);
			assert_string_equal(v.text, cases[i].text);
		}
	}
	/* Each failure is in mainlog and paniclog with event and line. */
	assert_non_null(strstr(logged, "PANIC policy mail handler failed at "));
	assert_non_null(strstr(logged, "policy.lua:13: broken policy"));
	assert_non_null(strstr(logged, "returned \"accept\""));
}

static void
test_rcpt_relay(void **state)
{
	struct fixture *f = *state;
	struct policy_tx tx = { .sender = "a@x" };
	struct policy_verdict v;

	start_ok(f, "sluice.on('rcpt', function(tx, rcpt)\n"
	    "  assert(tx.sender == 'a@x' and #tx.recipients == 0)\n"
	    "  if rcpt == 'r@relay.test' then return 'relay' end\n"
	    "end)\n", "");
	policy_rcpt(f->ps, &test_conn, &tx, "r@relay.test", &v);
	assert_int_equal(v.action, POLICY_RELAY);
	policy_rcpt(f->ps, &test_conn, &tx, "r@other.test", &v);
	assert_int_equal(v.action, POLICY_CONTINUE);
}

static void
test_conn_fields(void **state)
{
	struct fixture *f = *state;
	struct policy_verdict v;

	start_ok(f, "sluice.on('connect', function(conn)\n"
	    "  local want = { ip = '192.0.2.1', port = 40000,\n"
	    "    local_ip = '127.0.0.1', local_port = 25,\n"
	    "    listener = '[127.0.0.1]:25', tls = false,\n"
	    "    helo = 'client.example' }\n"
	    "  for k, w in pairs(want) do\n"
	    "    if conn[k] ~= w then\n"
	    "      return 'reject', 550, k .. '=' .. tostring(conn[k])\n"
	    "    end\n"
	    "  end\n"
	    "  if conn.auth_id ~= nil then return 'reject', 550, 'auth' end\n"
	    "  if pcall(function() return conn.nosuch end) then\n"
	    "    return 'reject', 550, 'unknown field read'\n"
	    "  end\n"
	    "  if pcall(function() conn.ip = '1.2.3.4' end) then\n"
	    "    return 'reject', 550, 'field written'\n"
	    "  end\n"
	    "  if getmetatable(conn) ~= 'sluice.conn' then\n"
	    "    return 'reject', 550, 'metatable visible'\n"
	    "  end\n"
	    "end)\n", "");
	policy_connect(f->ps, &test_conn, &v);
	if (v.action != POLICY_CONTINUE)
		fail_msg("connect: %d %s", v.code, v.text);
}

static void
test_message_fields_and_headers(void **state)
{
	struct fixture *f = *state;
	struct test_message t;
	struct policy_verdict v;

	start_ok(f, "sluice.on('message', function(msg)\n"
	    "  local function check(what, got, want)\n"
	    "    if got ~= want then\n"
	    "      error(what .. ': got ' .. tostring(got) .. ', want ' ..\n"
	    "        tostring(want))\n"
	    "    end\n"
	    "  end\n"
	    "  check('id', msg.id, '1tt1Jd-00000000CXd-1jGj')\n"
	    "  check('sender', msg.sender, 'alice@example.org')\n"
	    "  check('recipients', table.concat(msg.recipients, ','),\n"
	    "    'bob@example.net,carol@example.net')\n"
	    "  check('size', msg.size, 1234)\n"
	    "  check('client_ip', msg.client_ip, '192.0.2.1')\n"
	    "  check('auth_id', msg.auth_id, nil)\n"
	    "  check('subject', msg:header('subject'), 'hello  world')\n"
	    "  check('missing', msg:header('X-None'), nil)\n"
	    "  check('headers', #msg:headers('To'), 1)\n"
	    "  check('removed', msg:remove_header('to'), 1)\n"
	    "  msg:add_header('X-Class', 'bulk')\n"
	    "  msg.queue_class = 'newsletter'\n"
	    "  msg.tenant = 'acme'\n"
	    "  msg.campaign = 'spring-2026'\n"
	    "  check('class', msg.queue_class, 'newsletter')\n"
	    "  check('bad class', pcall(function() msg.queue_class = 'a b' end),\n"
	    "    false)\n"
	    "  check('bad header', pcall(msg.add_header, msg, 'X-A', 'a\\nb'),\n"
	    "    false)\n"
	    "  check('bad name', pcall(msg.add_header, msg, 'X:A', 'b'), false)\n"
	    "  check('read-only', pcall(function() msg.id = 'x' end), false)\n"
	    "end)\n", "");
	message_init(&t);
	policy_message(f->ps, &t.msg, &v);
	if (v.action != POLICY_CONTINUE)
		fail_msg("message: %d; log: %s", (int)v.action, logged);

	assert_null(live_field(&t.header, "To:"));
	assert_string_equal(live_field(&t.header, "X-Class:"),
	    "X-Class: bulk\n");
	assert_string_equal(spool_header_get_acl(&t.header, SPOOL_ACL_CLASS),
	    "newsletter");
	assert_string_equal(spool_header_get_acl(&t.header, SPOOL_ACL_TENANT),
	    "acme");
	assert_string_equal(spool_header_get_acl(&t.header, SPOOL_ACL_CAMPAIGN),
	    "spring-2026");
	spool_header_free(&t.header);
}

static void
test_message_reject_logs_id(void **state)
{
	struct fixture *f = *state;
	struct test_message t;
	struct policy_verdict v;

	start_ok(f, "sluice.on('message', function(msg)\n"
	    "  sluice.log('info', 'classifying')\n"
	    "  error('no class for ' .. msg.sender)\n"
	    "end)\n", "");
	message_init(&t);
	policy_message(f->ps, &t.msg, &v);
	assert_int_equal(v.action, POLICY_FAILED);
	assert_non_null(strstr(logged, "1tt1Jd-00000000CXd-1jGj policy info at "));
	assert_non_null(strstr(logged, "PANIC 1tt1Jd-00000000CXd-1jGj policy "
	    "message handler failed at "));
	assert_non_null(strstr(logged, "policy.lua:3: no class for "
	    "alice@example.org"));
	spool_header_free(&t.header);
}

/* ---- classes and stale references ---- */

static void
test_stale_object(void **state)
{
	struct fixture *f = *state;
	struct test_message t;
	struct policy_verdict v;

	start_ok(f, "local kept\n"
	    "sluice.on('message', function(msg) kept = msg end)\n"
	    "sluice.on('mail', function(tx, sender)\n"
	    "  if sender == 'touch@x' then return 'reject', 550, kept.id end\n"
	    "  local ok, err = pcall(function() return kept:header('To') end)\n"
	    "  if ok then return 'reject', 550, 'stale msg worked' end\n"
	    "  return 'defer', 450, (err:gsub('[^ -~]', '?'):sub(1, 200))\n"
	    "end)\n", "");
	message_init(&t);
	policy_message(f->ps, &t.msg, &v);
	assert_int_equal(v.action, POLICY_CONTINUE);
	spool_header_free(&t.header);	/* the object's data is gone */

	v = mail(f->ps, "check@x");
	assert_int_equal(v.action, POLICY_DEFER);
	assert_non_null(strstr(v.text, "stale sluice.msg"));

	v = mail(f->ps, "touch@x");
	assert_int_equal(v.action, POLICY_FAILED);
	assert_non_null(strstr(logged, "stale sluice.msg: the object was kept "
	    "after its handler returned"));
}

static void
test_wrong_class(void **state)
{
	struct fixture *f = *state;
	struct test_message t;
	struct policy_verdict v;

	start_ok(f, "local header\n"
	    "sluice.on('message', function(msg) header = msg.header end)\n"
	    "sluice.on('mail', function(tx, sender)\n"
	    "  local ok, err = pcall(header, tx, 'To')\n"
	    "  if ok then return 'reject', 550, 'tx taken for msg' end\n"
	    "  local ok2, err2 = pcall(header, {}, 'To')\n"
	    "  if ok2 then return 'reject', 550, 'table taken for msg' end\n"
	    "  return 'defer', 450, (err:gsub('[^ -~]', '?'):sub(1, 200))\n"
	    "end)\n", "");
	message_init(&t);
	policy_message(f->ps, &t.msg, &v);
	spool_header_free(&t.header);
	v = mail(f->ps, "a@x");
	assert_int_equal(v.action, POLICY_DEFER);
	assert_non_null(strstr(v.text, "sluice.msg expected"));
}

/* ---- the sandbox ---- */

static void
test_sandbox(void **state)
{
	struct fixture *f = *state;
	char path[128], policy[4096];
	const char *src =
	    "local absent = { 'dofile', 'loadfile', 'debug', 'getfenv',\n"
	    "  'setfenv', 'newproxy', 'print', 'collectgarbage', 'module',\n"
	    "  'package' }\n"
	    "for _, name in ipairs(absent) do\n"
	    "  assert(_G[name] == nil, name .. ' is reachable')\n"
	    "end\n"
	    "assert(os.execute == nil and os.exit == nil and os.getenv == nil)\n"
	    "assert(io.popen == nil and io.lines == nil)\n"
	    "assert(string.dump == nil and (''):len() == 0)\n"
	    "assert(jit.status ~= nil and jit.off == nil and jit.util == nil)\n"
	    "assert(not pcall(require, 'ffi'))\n"
	    "assert(not pcall(require, '../etc/passwd'))\n"
	    "assert(require('helper').answer == 42)\n"
	    "local f = assert(io.open(DATA))\n"
	    "kept_file = f\n"
	    "first_line = f:read('*l')\n"
	    "assert(not pcall(io.open, DATA, 'w'))\n"
	    "assert(load('\\27LJ\\2') == nil, 'bytecode loaded')\n"
	    "assert(load('return 1 + 1')() == 2)\n"
	    "assert(not pcall(function() sluice.on = nil end))\n"
	    "sluice.on('mail', function(tx, sender)\n"
	    "  local checks = {\n"
	    "    open = function() return io.open(DATA) end,\n"
	    "    kept = function() return kept_file:read('*l') end,\n"
	    "    require = function() return require('other') end,\n"
	    "    on = function() sluice.on('rcpt', function() end) end,\n"
	    "  }\n"
	    "  for name, fn in pairs(checks) do\n"
	    "    if pcall(fn) then return 'reject', 550, name .. ' worked' end\n"
	    "  end\n"
	    "  if require('helper').answer ~= 42 then\n"
	    "    return 'reject', 550, 'loaded module lost'\n"
	    "  end\n"
	    "  return 'defer', 450, first_line\n"
	    "end)\n";
	struct policy_verdict v;

	write_file(f, "data.txt", "line one\n");
	write_file(f, "helper.lua", "return { answer = 42 }\n");
	write_file(f, "other.lua", "return {}\n");
	snprintf(path, sizeof(path), "%s/data.txt", f->dir);
	snprintf(policy, sizeof(policy), "local DATA = '%s'\n%s", path, src);
	start_ok(f, policy, "");
	v = mail(f->ps, "a@x");
	if (v.action != POLICY_DEFER)
		fail_msg("got %d %s; log: %s", (int)v.action, v.text, logged);
	assert_string_equal(v.text, "line one");
}

static void
test_load_errors(void **state)
{
	static const struct {
		const char *policy;
		const char *want;
	} cases[] = {
		{ "sluice.on('mail', function()\n", "policy.lua:2:" },
		{ "sluice.on('nosuch', function() end)\n", "unknown event "
		    "\"nosuch\"" },
		{ "error('stop here')\n", "policy.lua:1: stop here" },
		{ "os.execute('true')\n", "attempt to call field 'execute'" },
		{ "\033LJ\002\001", "policy.lua: precompiled bytecode is not "
		    "accepted" },
	};
	struct fixture *f = *state;

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *error = NULL;

		config_free(f->config);
		f->config = NULL;
		prepare(f, cases[i].policy, "");
		if (start(f, &error) == 0)
			fail_msg("case %zu loaded", i);
		if (strstr(error, cases[i].want) == NULL)
			fail_msg("case %zu: got \"%s\", want \"%s\"", i, error,
			    cases[i].want);
		free(error);
	}
}

static void
test_second_handler_replaces(void **state)
{
	struct fixture *f = *state;
	struct policy_verdict v;

	start_ok(f, "sluice.on('mail', function() return 'reject' end)\n"
	    "sluice.on('mail', function() return 'defer' end)\n", "");
	v = mail(f->ps, "a@x");
	assert_int_equal(v.action, POLICY_DEFER);
	assert_non_null(strstr(logged, "policy warning: a second handler for "
	    "mail at "));
}

static void
test_library(void **state)
{
	struct fixture *f = *state;
	struct policy_verdict v;

	start_ok(f, "sluice.on('mail', function()\n"
	    "  assert(sluice.hostname == 'test.example')\n"
	    "  assert(type(sluice.version) == 'string')\n"
	    "  assert(sluice.config('lua_time_limit') == '50')\n"
	    "  assert(sluice.config('no_such_option') == nil)\n"
	    "  assert(math.abs(sluice.now() - os.time()) < 5)\n"
	    "  sluice.log('warn', 'line\\nbreak')\n"
	    "end)\n", "");
	v = mail(f->ps, "a@x");
	if (v.action != POLICY_CONTINUE)
		fail_msg("log: %s", logged);
	/* The newline the policy logged is escaped. */
	assert_non_null(strstr(logged, ": line\\nbreak\n"));
}

/* ---- the time budget ---- */

/* Counts the compiled traces of the state through jit.util. */
static int
count_traces(struct policy_state *ps)
{
	lua_State *L = ps->L;
	int count = 0;

	lua_rawgeti(L, LUA_REGISTRYINDEX, ps->jit_util_ref);
	for (int i = 1; i <= 1000; i++) {
		lua_getfield(L, -1, "traceinfo");
		lua_pushinteger(L, i);
		lua_call(L, 1, 1);
		if (!lua_isnil(L, -1))
			count++;
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
	return count;
}

static const char spin_policy[] =
    "sluice.on('mail', function(tx, sender)\n"
    "  local limit = 200\n"
    "  if sender == 'spin@x' then limit = math.huge end\n"
    "  local i = 0\n"
    "  while i < limit do i = i + 1 end\n"
    "  if not jit.status() then return 'defer', 450, 'jit off' end\n"
    "end)\n";

static void
test_budget_stops_compiled_loop(void **state)
{
	struct fixture *f = *state;
	struct policy_state *now;
	struct policy_verdict v;

	start_ok(f, spin_policy, "");
	/* Run the loop until LuaJIT has compiled it: the runaway call
	 * below then spins in machine code, where no hook runs. */
	for (int i = 0; i < 10; i++)
		assert_int_equal(mail(f->ps, "a@x").action, POLICY_CONTINUE);
	assert_true(count_traces(f->ps) >= 1);

	v = mail(f->ps, "spin@x");
	assert_int_equal(v.action, POLICY_FAILED);
	assert_non_null(strstr(logged, "time budget exceeded in compiled or "
	    "library code"));
	assert_true(f->ps->abandoned);
	assert_int_equal(f->ps->memory_used, 0);

	/* The policy was loaded again and serves the next call. */
	now = policy_current();
	assert_ptr_not_equal(now, f->ps);
	assert_int_equal(mail(now, "a@x").action, POLICY_CONTINUE);
	policy_refresh(&f->ps, false);
	assert_ptr_equal(f->ps, now);
	policy_state_unref(now);
}

/* Turns the JIT off in ps, through the real jit table. */
static void
jit_off(struct policy_state *ps)
{
	lua_State *L = ps->L;

	lua_getfield(L, LUA_REGISTRYINDEX, "_LOADED");
	lua_getfield(L, -1, "jit");
	lua_getfield(L, -1, "off");
	lua_call(L, 0, 0);
	lua_pop(L, 2);
}

static void
test_budget_stops_interpreted_loop(void **state)
{
	struct fixture *f = *state;
	struct policy_verdict v;

	start_ok(f, "sluice.on('mail', function(tx, sender)\n"
	    "  if sender == 'catch@x' then\n"
	    "    while true do pcall(function() while true do end end) end\n"
	    "  end\n"
	    "  while true do end\n"
	    "end)\n", "");
	jit_off(f->ps);

	v = mail(f->ps, "a@x");
	assert_int_equal(v.action, POLICY_FAILED);
	assert_non_null(strstr(logged, "policy.lua:5: time budget exceeded"));
	/* Stopped by the hook: the state lives on. */
	assert_false(f->ps->abandoned);

	/* A pcall in the policy cannot swallow the budget error. */
	v = mail(f->ps, "catch@x");
	assert_int_equal(v.action, POLICY_FAILED);
	assert_false(f->ps->abandoned);
}

static void
test_budget_stops_pattern(void **state)
{
	struct fixture *f = *state;
	struct policy_verdict v;

	/* Backtracking inside LuaJIT's C code, for far longer than the
	 * budget. */
	start_ok(f, "sluice.on('mail', function()\n"
	    "  local s = string.rep('a', 40)\n"
	    "  s:find(string.rep('(.-)', 12) .. 'b')\n"
	    "end)\n", "");
	v = mail(f->ps, "a@x");
	assert_int_equal(v.action, POLICY_FAILED);
	assert_non_null(strstr(logged, "time budget exceeded"));
}

static void
test_budget_stops_top_level(void **state)
{
	struct fixture *f = *state;
	char *error = NULL;

	prepare(f, "local i = 0\nwhile true do i = i + 1 end\n", "");
	assert_int_equal(start(f, &error), -1);
	assert_non_null(strstr(error, "time budget exceeded while loading"));
	free(error);
}

/* ---- the memory cap ---- */

static void
test_memory_cap(void **state)
{
	struct fixture *f = *state;
	struct policy_verdict v;

	start_ok(f, "sluice.on('mail', function(tx, sender)\n"
	    "  if sender == 'small@x' then return 'defer', 450, 'fine' end\n"
	    "  local t = {}\n"
	    "  for i = 1, 1e9 do t[i] = string.rep('x', 100) .. i end\n"
	    "end)\n", "lua_memory_limit = 4M\nlua_time_limit = 10000\n");
	v = mail(f->ps, "big@x");
	assert_int_equal(v.action, POLICY_FAILED);
	assert_non_null(strstr(logged, "not enough memory (lua_memory_limit is "
	    "4194304 bytes)"));
	assert_true(f->ps->memory_used <= 4 * 1024 * 1024);

	v = mail(f->ps, "small@x");
	assert_int_equal(v.action, POLICY_DEFER);
}

/* ---- reload and tick ---- */

static void
test_reload(void **state)
{
	struct fixture *f = *state;
	struct policy_state *old = NULL;
	struct config *next = NULL;
	char path[128];
	char *error = NULL;
	struct policy_verdict v;

	start_ok(f, "sluice.on('mail', function() return 'reject', 550, 'v1' "
	    "end)\n", "");
	old = policy_current();

	/* A broken policy: the old one stays current. */
	write_file(f, "policy.lua", "sluice.on('mail', function()\n");
	snprintf(path, sizeof(path), "%s/sluice.conf", f->dir);
	assert_int_equal(config_load(path, NULL, 0, &next, &error), 0);
	assert_int_equal(policy_reload(next, &error), -1);
	assert_non_null(strstr(error, "policy.lua:2:"));
	free(error);
	error = NULL;
	config_free(next);
	next = NULL;
	v = mail(f->ps, "a@x");
	assert_string_equal(v.text, "v1");

	/* A changed policy becomes current; its reload handler runs, and
	 * a holder of the old state keeps it until its next boundary. */
	write_file(f, "policy.lua",
	    "local reloaded = false\n"
	    "sluice.on('reload', function() reloaded = true end)\n"
	    "sluice.on('mail', function()\n"
	    "  return 'reject', 550, reloaded and 'v2 reloaded' or 'v2'\n"
	    "end)\n");
	assert_int_equal(config_load(path, NULL, 0, &next, &error), 0);
	assert_int_equal(policy_reload(next, &error), 0);

	v = mail(old, "a@x");
	assert_string_equal(v.text, "v1");
	policy_refresh(&old, false);
	assert_string_equal(mail(old, "a@x").text, "v1");
	policy_refresh(&old, true);
	assert_string_equal(mail(old, "a@x").text, "v2 reloaded");
	policy_state_unref(old);

	/* The engine uses next now, so it stops before next is freed. */
	policy_state_unref(f->ps);
	f->ps = NULL;
	policy_stop();
	config_free(next);
}

static void
test_tick(void **state)
{
	struct fixture *f = *state;

	start_ok(f, "local ticks = 0\n"
	    "sluice.on('tick', function() ticks = ticks + 1 end)\n"
	    "sluice.on('mail', function() return 'defer', 450, 'ticks=' .. "
	    "ticks end)\n", "");
	policy_tick();
	policy_tick();
	assert_string_equal(mail(f->ps, "a@x").text, "ticks=2");
}

static void
test_default_policy(void **state)
{
	struct fixture *f = *state;
	struct test_message t;
	struct policy_verdict v;
	static const char bulk[] = "List-Unsubscribe: <mailto:u@x>\n";

	start_ok(f, "", "lua_policy = " SLUICE_SRCDIR "/scripts/default.lua\n");
	message_init(&t);
	policy_message(f->ps, &t.msg, &v);
	assert_int_equal(v.action, POLICY_CONTINUE);
	assert_string_equal(spool_header_get_acl(&t.header, SPOOL_ACL_CLASS),
	    "transactional");
	spool_header_add_field(&t.header, ' ', bulk, strlen(bulk));
	policy_message(f->ps, &t.msg, &v);
	assert_string_equal(spool_header_get_acl(&t.header, SPOOL_ACL_CLASS),
	    "newsletter");
	spool_header_free(&t.header);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_no_handler_continues),
		T(test_verdicts),
		T(test_rcpt_relay),
		T(test_conn_fields),
		T(test_message_fields_and_headers),
		T(test_message_reject_logs_id),
		T(test_stale_object),
		T(test_wrong_class),
		T(test_sandbox),
		T(test_load_errors),
		T(test_second_handler_replaces),
		T(test_library),
		T(test_budget_stops_compiled_loop),
		T(test_budget_stops_interpreted_loop),
		T(test_budget_stops_pattern),
		T(test_budget_stops_top_level),
		T(test_memory_cap),
		T(test_reload),
		T(test_tick),
		T(test_default_policy),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

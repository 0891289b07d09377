/*
 * test_policy_queue.c - unit tests of the queue-side policy events
 * (lua/policy_queue.c) and of the declarations of sources, pools and
 * classes (lua/policy_declarations.c): defaults without a policy or a
 * handler, the values handlers get, every check of what they return,
 * sluice.suspend(), and the time and memory budgets.
 *
 * Each test writes its policy into a fresh temporary folder, starts the
 * engine on it and calls the events directly. Log lines are caught with
 * log_set_divert() so that tests can check what operators would see.
 * The time budget is short (lua_time_limit = 50) so that runaway
 * handlers end quickly; no test checks how long anything took.
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
#include "policy_queue.h"
#include "util.h"

#define TEST_MSGID	"1tt1Jd-00000000CXd-1jGj"

struct fixture {
	char dir[64];
	struct config *config;
	struct policy_state *ps;	/* a reference of the test's own */
	struct policy_declarations *decls;	/* too large for the stack */
};

/* Log lines caught since the last reset, joined by newlines. */
static char logged[65536];

/* What the test suspend function received, and what it returns. */
static struct {
	int calls;
	char source[128];
	char site[300];
	uint32_t seconds;
	char reason[300];
	bool fail;
} suspended;

/* The folder of the running test, which catch_log() removes from log
 * lines so that they read "policy.lua:2". */
static char test_dir[64];

static void
catch_log(unsigned targets, const char *msgid, const char *text)
{
	size_t used = strlen(logged), dir_len = strlen(test_dir);
	char line[4096];
	const char *at;

	snprintf(line, sizeof(line), "%s", text);
	while (dir_len > 0 && (at = strstr(line, test_dir)) != NULL &&
	    at[dir_len] == '/')
		memmove((char *)at, at + dir_len + 1, strlen(at + dir_len + 1) + 1);
	snprintf(logged + used, sizeof(logged) - used, "%s%s%s%s\n",
	    (targets & LOG_PANIC) != 0 ? "PANIC " : "",
	    msgid != NULL ? msgid : "", msgid != NULL ? " " : "", line);
}

static int
test_suspend(void *arg, const char *source, const char *site,
    uint32_t seconds, const char *reason, char *error, size_t size)
{
	assert_ptr_equal(arg, &suspended);
	suspended.calls++;
	snprintf(suspended.source, sizeof(suspended.source), "%s", source);
	snprintf(suspended.site, sizeof(suspended.site), "%s", site);
	suspended.seconds = seconds;
	snprintf(suspended.reason, sizeof(suspended.reason), "%s", reason);
	if (suspended.fail) {
		snprintf(error, size, "unknown source %s", source);
		return -1;
	}
	return 0;
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

/* Writes sluice.conf (with extra settings) and policy.lua and starts
 * the engine; returns 0, or -1 with *error set (caller frees). */
static int
start(struct fixture *f, const char *policy, const char *settings,
    char **error)
{
	char conf[1024], path[128];

	snprintf(conf, sizeof(conf), "primary_hostname = test.example\n"
	    "spool_directory = %s/spool\nlua_policy = policy.lua\n"
	    "lua_time_limit = 50\n%s", f->dir, settings);
	write_file(f, "sluice.conf", conf);
	write_file(f, "policy.lua", policy);
	snprintf(path, sizeof(path), "%s/sluice.conf", f->dir);
	if (config_load(path, NULL, 0, &f->config, error) < 0)
		fail_msg("config_load: %s", *error);
	if (policy_start(NULL, f->config, error) < 0)
		return -1;
	f->ps = policy_current();
	return 0;
}

static void
start_ok(struct fixture *f, const char *policy)
{
	char *error = NULL;

	if (start(f, policy, "", &error) < 0)
		fail_msg("policy_start: %s", error);
	assert_non_null(f->ps);
}

/* Starts a policy that must fail to load, and checks that the error
 * contains expected. */
static void
start_fails(struct fixture *f, const char *policy, const char *expected)
{
	char *error = NULL;

	if (start(f, policy, "", &error) == 0)
		fail_msg("the policy loaded; expected an error with \"%s\"",
		    expected);
	if (strstr(error, expected) == NULL)
		fail_msg("got error \"%s\", want one with \"%s\"", error,
		    expected);
	free(error);
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	f->decls = calloc(1, sizeof(*f->decls));
	if (f->decls == NULL)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/sluice-pqueue-XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(test_dir, sizeof(test_dir), "%s", f->dir);
	logged[0] = '\0';
	memset(&suspended, 0, sizeof(suspended));
	log_set_divert(catch_log);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	policy_set_suspend_fn(NULL, NULL);
	policy_state_unref(f->ps);
	policy_stop();
	config_free(f->config);
	log_set_divert(NULL);
	nftw(f->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(f->decls);
	free(f);
	return 0;
}

/* ---- helpers to call the events ---- */

static const struct policy_mx test_mx[] = {
	{ "aspmx.l.google.com", 1 },
	{ "alt1.aspmx.l.google.com", 5 },
};

static const struct policy_route_in test_route_in = {
	.msgid = TEST_MSGID, .sender = "alice@example.org",
	.domain = "vanity.example", .class_name = "newsletter",
	.tenant = "acme", .campaign = "spring", .mx = test_mx, .mx_count = 2,
};

/* Runs route with out preset to recognisable defaults. */
static enum policy_queue_result
route(struct policy_state *ps, struct policy_route_out *out)
{
	memset(out, 0, sizeof(*out));
	snprintf(out->site, sizeof(out->site), "mxset");
	snprintf(out->pool, sizeof(out->pool), "default");
	snprintf(out->route, sizeof(out->route), "dnslookup");
	return policy_route(ps, &test_route_in, out);
}

static const struct policy_source_choice test_sources[] = {
	{ "ip1", "127.0.0.2", 80, false, false, 0, 10 },
	{ "ip2", "127.0.0.3", 20, true, false, 3, 0 },
	{ "ip3", "::1", 50, false, true, 0, 5000 },
};

static const struct policy_path_in test_path_in = {
	.msgid = TEST_MSGID, .site = "gmail", .pool = "bulk",
	.class_name = "newsletter", .domain = "gmail.test",
	.sources = test_sources, .source_count = 3,
};

static const struct policy_shaping_in test_shaping_in = {
	.source_name = "ip1", .source_ip = "127.0.0.2", .site = "gmail",
	.pool = "bulk",
};

static const struct policy_delivery_result test_result = {
	.msgid = TEST_MSGID, .outcome = "deferred", .source_name = "ip2",
	.source_ip = "127.0.0.3", .site = "gmail", .pool = "bulk",
	.domain = "gmail.test", .host = "mx.gmail.test",
	.host_ip = "127.0.0.20", .code = 421, .enhanced_code = "4.7.28",
	.reply = "Our system has detected an unusual rate", .class_name =
	"newsletter", .tenant = "acme", .campaign = "spring",
	.queue_time = 12.5, .recipients = 2,
};

/* Logged lines must contain expected. */
static void
assert_logged(const char *expected)
{
	if (strstr(logged, expected) == NULL)
		fail_msg("log has no \"%s\"; got:\n%s", expected, logged);
}

/* Starts a route handler that returns the Lua expression answer. */
static void
start_route(struct fixture *f, const char *answer)
{
	char policy[2048];

	snprintf(policy, sizeof(policy),
	    "sluice.source{ name = 'ip1', ip = '127.0.0.2' }\n"
	    "sluice.pool{ name = 'bulk', sources = { 'ip1' } }\n"
	    "sluice.on('route', function(msg, domain, mx)\n"
	    "  return %s\n"
	    "end)\n", answer);
	start_ok(f, policy);
}

/* ---- no policy, no handler ---- */

static void
test_no_policy_defaults(void **state)
{
	struct fixture *f = *state;
	struct policy_route_out out;
	struct policy_shaping shaping = { .max_connections = 7 };
	size_t index = 99;

	assert_int_equal(route(NULL, &out), POLICY_QUEUE_DEFAULT);
	assert_string_equal(out.site, "mxset");
	assert_int_equal(policy_select_source(NULL, &test_path_in, &index),
	    POLICY_QUEUE_DEFAULT);
	assert_int_equal(index, 99);
	assert_int_equal(policy_shaping(NULL, &test_shaping_in, &shaping),
	    POLICY_QUEUE_DEFAULT);
	assert_int_equal(shaping.max_connections, 7);
	policy_delivery_result(NULL, &test_result);

	policy_declarations_get(NULL, f->decls);
	assert_int_equal(f->decls->source_count, 0);
	assert_int_equal(f->decls->pool_count, 0);
	assert_int_equal(f->decls->class_count, 4);
	assert_string_equal(f->decls->classes[0].name, "critical");
	assert_int_equal(f->decls->classes[0].priority, 1000);
	assert_true(f->decls->classes[0].strict);
	assert_string_equal(f->decls->classes[1].name, "transactional");
	assert_int_equal(f->decls->classes[1].priority, 100);
	assert_false(f->decls->classes[1].strict);
	assert_string_equal(f->decls->classes[2].name, "personal");
	assert_int_equal(f->decls->classes[2].priority, 50);
	assert_string_equal(f->decls->classes[3].name, "newsletter");
	assert_int_equal(f->decls->classes[3].priority, 10);
	assert_string_equal(f->decls->classes[3].pool, "");
}

static void
test_no_handler_defaults(void **state)
{
	struct fixture *f = *state;
	struct policy_route_out out;
	struct policy_shaping shaping = { 0 };
	size_t index = 99;

	start_ok(f, "sluice.on('mail', function() end)\n");
	assert_int_equal(route(f->ps, &out), POLICY_QUEUE_DEFAULT);
	assert_int_equal(policy_select_source(f->ps, &test_path_in, &index),
	    POLICY_QUEUE_DEFAULT);
	assert_int_equal(policy_shaping(f->ps, &test_shaping_in, &shaping),
	    POLICY_QUEUE_DEFAULT);
	policy_delivery_result(f->ps, &test_result);
	assert_string_equal(logged, "");

	policy_declarations_get(f->ps, f->decls);
	assert_int_equal(f->decls->class_count, 4);
	assert_int_equal(f->decls->pool_count, 0);
}

/* ---- declarations ---- */

static void
test_declarations_kept(void **state)
{
	struct fixture *f = *state;
	const struct policy_declarations *d = f->decls;

	start_ok(f,
	    "sluice.source{ name = 'ip1', ip = '127.0.0.2',"
	    " ehlo = 'out1.example.com' }\n"
	    "sluice.source{ name = 'ip2', ip = '::1' }\n"
	    "sluice.source{ name = 'ip3', ip = '127.0.0.4' }\n"
	    "sluice.pool{ name = 'bulk', sources = { 'ip2', '127.0.0.4' } }\n"
	    "sluice.class{ name = 'newsletter', priority = 5, pool = 'bulk',\n"
	    "  headers = { ['X-Tier'] = 'bulk', ['List-Id'] = '<a.example>' },\n"
	    "  retry = 'F,2h,15m; G,16h,1h,1.5' }\n"
	    "sluice.class{ name = 'alerts', priority = 900, strict = true,"
	    " pool = 'default' }\n");
	policy_declarations_get(f->ps, f->decls);

	assert_int_equal(d->source_count, 3);
	assert_string_equal(d->sources[0].name, "ip1");
	assert_string_equal(d->sources[0].ip, "127.0.0.2");
	assert_string_equal(d->sources[0].ehlo, "out1.example.com");
	assert_string_equal(d->sources[1].ip, "::1");
	assert_string_equal(d->sources[1].ehlo, "");

	/* bulk, then the implicit default pool with every source. */
	assert_int_equal(d->pool_count, 2);
	assert_string_equal(d->pools[0].name, "bulk");
	assert_int_equal(d->pools[0].source_count, 2);
	assert_int_equal(d->pools[0].sources[0], 1);
	assert_int_equal(d->pools[0].sources[1], 2);
	assert_string_equal(d->pools[1].name, "default");
	assert_int_equal(d->pools[1].source_count, 3);

	/* The redefined newsletter keeps its place; alerts comes last. */
	assert_int_equal(d->class_count, 5);
	assert_string_equal(d->classes[0].name, "critical");
	assert_string_equal(d->classes[3].name, "newsletter");
	assert_int_equal(d->classes[3].priority, 5);
	assert_false(d->classes[3].strict);
	assert_string_equal(d->classes[3].pool, "bulk");
	assert_int_equal(d->classes[3].header_count, 2);
	assert_string_equal(d->classes[3].headers[0].name, "List-Id");
	assert_string_equal(d->classes[3].headers[0].value, "<a.example>");
	assert_string_equal(d->classes[3].headers[1].name, "X-Tier");
	assert_string_equal(d->classes[3].retry, "F,2h,15m; G,16h,1h,1.5");
	assert_string_equal(d->classes[4].name, "alerts");
	assert_int_equal(d->classes[4].priority, 900);
	assert_true(d->classes[4].strict);
	assert_string_equal(d->classes[4].pool, "");
}

static void
test_declared_default_pool_replaces(void **state)
{
	struct fixture *f = *state;

	start_ok(f,
	    "sluice.source{ name = 'ip1', ip = '127.0.0.2' }\n"
	    "sluice.source{ name = 'ip2', ip = '127.0.0.3' }\n"
	    "sluice.pool{ name = 'default', sources = { 'ip2' } }\n");
	policy_declarations_get(f->ps, f->decls);
	assert_int_equal(f->decls->pool_count, 1);
	assert_string_equal(f->decls->pools[0].name, "default");
	assert_int_equal(f->decls->pools[0].source_count, 1);
	assert_int_equal(f->decls->pools[0].sources[0], 1);
}

static const struct {
	const char *policy;
	const char *error;
} bad_declarations[] = {
	{ "sluice.source{ ip = '127.0.0.2' }", "name must be a string and is "
	    "missing" },
	{ "sluice.source{ name = 'a b', ip = '127.0.0.2' }",
	    "invalid name \"a b\"" },
	{ "sluice.source{ name = string.rep('a', 65), ip = '127.0.0.2' }",
	    "invalid name" },
	{ "sluice.source{ name = 'ip1', ip = '127.0.0.256' }",
	    "invalid ip \"127.0.0.256\"" },
	{ "sluice.source{ name = 'ip1', ip = '127.0.0.2\\0' }", "invalid ip" },
	{ "sluice.source{ name = 'ip1' }", "ip must be a string and is "
	    "missing" },
	{ "sluice.source{ name = 'ip1', ip = '127.0.0.2', ehlo = 'a_b.example' }",
	    "invalid ehlo" },
	{ "sluice.source{ name = 'ip1', ip = '127.0.0.2', ehlo = '-a.example' }",
	    "invalid ehlo" },
	{ "sluice.source{ name = 'ip1', ip = '127.0.0.2', helo = 'a' }",
	    "unknown field \"helo\"" },
	{ "sluice.source{ name = 'ip1', ip = '127.0.0.2' }\n"
	    "sluice.source{ name = 'ip1', ip = '127.0.0.3' }",
	    "already declared" },
	{ "sluice.source{ name = 'ip1', ip = '127.0.0.2' }\n"
	    "sluice.source{ name = 'ip2', ip = '127.0.0.2' }",
	    "already declared" },
	{ "for i = 1, 257 do sluice.source{ name = 's' .. i,"
	    " ip = '10.0.' .. math.floor(i / 256) .. '.' .. i % 256 } end",
	    "more than 256 sources" },
	{ "sluice.pool{ name = 'bulk', sources = { 'nope' } }",
	    "\"nope\" is not a declared source" },
	{ "sluice.source{ name = 'ip1', ip = '127.0.0.2' }\n"
	    "sluice.pool{ name = 'bulk', sources = {} }", "sources must list 1" },
	{ "sluice.source{ name = 'ip1', ip = '127.0.0.2' }\n"
	    "sluice.pool{ name = 'bulk', sources = 'ip1' }",
	    "sources must be an array" },
	{ "sluice.source{ name = 'ip1', ip = '127.0.0.2' }\n"
	    "sluice.pool{ name = 'bulk', sources = { 'ip1', 'ip1' } }",
	    "listed twice" },
	{ "sluice.source{ name = 'ip1', ip = '127.0.0.2' }\n"
	    "sluice.pool{ name = 'bulk', sources = { 'ip1', x = 'ip1' } }",
	    "sources must be an array" },
	{ "sluice.source{ name = 'ip1', ip = '127.0.0.2' }\n"
	    "sluice.pool{ name = 'bulk', sources = { 'ip1' } }\n"
	    "sluice.pool{ name = 'bulk', sources = { 'ip1' } }",
	    "pool \"bulk\" is already declared" },
	{ "sluice.source{ name = 'ip1', ip = '127.0.0.2' }\n"
	    "for i = 1, 64 do sluice.pool{ name = 'p' .. i,"
	    " sources = { 'ip1' } } end", "pools besides \"default\"" },
	{ "sluice.class{ name = 'bulk' }", "priority must be a whole number" },
	{ "sluice.class{ name = 'bulk', priority = 0 }", "priority must be" },
	{ "sluice.class{ name = 'bulk', priority = 1001 }", "priority must be" },
	{ "sluice.class{ name = 'bulk', priority = 2.5 }", "priority must be" },
	{ "sluice.class{ name = 'bulk', priority = 5, strict = 'yes' }",
	    "strict must be true or false" },
	{ "sluice.class{ name = 'bulk', priority = 5, pool = 'nope' }",
	    "pool \"nope\" is not declared" },
	{ "sluice.class{ name = 'bulk', priority = 5, headers = 'x' }",
	    "headers must be a table" },
	{ "sluice.class{ name = 'bulk', priority = 5,"
	    " headers = { ['X:Y'] = 'a' } }", "invalid header name" },
	{ "sluice.class{ name = 'bulk', priority = 5,"
	    " headers = { ['X-A'] = 'a\\r\\nBcc: x' } }", "no CR, LF or NUL" },
	{ "sluice.class{ name = 'bulk', priority = 5,"
	    " headers = { ['X-A'] = string.rep('v', 1025) } }",
	    "at most 1024 bytes" },
	{ "sluice.class{ name = 'bulk', priority = 5, headers = { 'x' } }",
	    "headers must map header names" },
	{ "local h = {} for i = 1, 17 do h['X-' .. i] = 'v' end\n"
	    "sluice.class{ name = 'bulk', priority = 5, headers = h }",
	    "more than 16 headers" },
	{ "sluice.class{ name = 'bulk', priority = 5, retry = 'X,1h' }",
	    "invalid retry" },
	{ "sluice.class{ name = 'bulk', priority = 5, retry = 7 }",
	    "retry must be a string" },
	{ "sluice.class{ name = 'bulk', priority = 5,"
	    " retry = string.rep('F,1h,1m;', 40) }", "retry must be 1 to 256" },
	{ "sluice.class{ name = 'bulk', priority = 5 }\n"
	    "sluice.class{ name = 'bulk', priority = 6 }",
	    "class \"bulk\" is already declared" },
	{ "sluice.class{ name = 'critical', priority = 5 }\n"
	    "sluice.class{ name = 'critical', priority = 6 }",
	    "class \"critical\" is already declared" },
	{ "for i = 1, 29 do sluice.class{ name = 'c' .. i, priority = 1 } end",
	    "more than 32 classes" },
	{ "sluice.class{ name = 'bulk', priority = 5, weight = 1 }",
	    "unknown field \"weight\"" },
	{ "sluice.class('bulk')", "table expected" },
	{ "sluice.on('tick', function() sluice.class{ name = 'x',"
	    " priority = 1 } end)\nsluice.source{ name = 'a', ip = '::1' }\n"
	    "sluice.suspend('a', 60)", "only allowed in a handler" },
};

static void
test_declarations_invalid(void **state)
{
	struct fixture *f = *state;

	for (size_t i = 0; i < ARRAY_SIZE(bad_declarations); i++) {
		start_fails(f, bad_declarations[i].policy,
		    bad_declarations[i].error);
		config_free(f->config);
		f->config = NULL;
		policy_stop();
	}
}

static void
test_declarations_only_while_loading(void **state)
{
	struct fixture *f = *state;
	struct policy_route_out out;

	start_ok(f, "sluice.on('route', function()\n"
	    "  sluice.source{ name = 'late', ip = '127.0.0.9' }\n"
	    "end)\n");
	assert_int_equal(route(f->ps, &out), POLICY_QUEUE_FAILED);
	assert_logged("sluice.source() is only allowed while the policy loads");
	policy_declarations_get(f->ps, f->decls);
	assert_int_equal(f->decls->source_count, 0);
}

static void
test_caught_class_error_keeps_default(void **state)
{
	struct fixture *f = *state;

	start_ok(f, "assert(not pcall(sluice.class, { name = 'critical',"
	    " priority = 7, strict = 'no' }))\n");
	policy_declarations_get(f->ps, f->decls);
	assert_int_equal(f->decls->class_count, 4);
	assert_string_equal(f->decls->classes[0].name, "critical");
	assert_int_equal(f->decls->classes[0].priority, 1000);
	assert_true(f->decls->classes[0].strict);
}

/* ---- route ---- */

static void
test_route_arguments_and_answer(void **state)
{
	struct fixture *f = *state;
	struct policy_route_out out;

	start_ok(f,
	    "sluice.source{ name = 'ip1', ip = '127.0.0.2' }\n"
	    "sluice.pool{ name = 'bulk', sources = { 'ip1' } }\n"
	    "sluice.on('route', function(msg, domain, mx)\n"
	    "  assert(msg.id == '" TEST_MSGID "' and msg.sender =="
	    " 'alice@example.org')\n"
	    "  assert(msg.class == 'newsletter' and msg.tenant == 'acme' and"
	    " msg.campaign == 'spring')\n"
	    "  assert(not pcall(function() msg.class = 'x' end))\n"
	    "  assert(domain == 'vanity.example' and #mx == 2)\n"
	    "  assert(mx[2].name == 'alt1.aspmx.l.google.com' and"
	    " mx[2].preference == 5)\n"
	    "  if mx[1].name:find('google%.com$') then\n"
	    "    return { site = 'gmail', pool = 'bulk', route = 'google',\n"
	    "      hosts = { 'mx.gmail.test', '127.0.0.20' }, port = 2525 }\n"
	    "  end\n"
	    "end)\n");
	assert_int_equal(route(f->ps, &out), POLICY_QUEUE_OK);
	assert_string_equal(out.site, "gmail");
	assert_string_equal(out.pool, "bulk");
	assert_string_equal(out.route, "google");
	assert_int_equal(out.host_count, 2);
	assert_string_equal(out.hosts[0], "mx.gmail.test");
	assert_string_equal(out.hosts[1], "127.0.0.20");
	assert_int_equal(out.port, 2525);
	assert_string_equal(logged, "");
}

static void
test_route_partial_answer_keeps_defaults(void **state)
{
	struct fixture *f = *state;
	struct policy_route_out out;

	start_route(f, "{ site = 'outlook' }");
	assert_int_equal(route(f->ps, &out), POLICY_QUEUE_OK);
	assert_string_equal(out.site, "outlook");
	assert_string_equal(out.pool, "default");
	assert_string_equal(out.route, "dnslookup");
	assert_int_equal(out.host_count, 0);
	assert_int_equal(out.port, 0);
}

static void
test_route_nil_is_default(void **state)
{
	struct fixture *f = *state;
	struct policy_route_out out;

	start_route(f, "nil");
	assert_int_equal(route(f->ps, &out), POLICY_QUEUE_DEFAULT);
	assert_string_equal(out.site, "mxset");
}

static const struct {
	const char *answer;
	const char *problem;
} bad_routes[] = {
	{ "'gmail'", "returned a string; expected a table or nil" },
	{ "{ site = '' }", "site must be 1 to 255" },
	{ "{ site = 'a b' }", "site must be" },
	{ "{ site = 'a/b' }", "site must be" },
	{ "{ site = string.rep('s', 256) }", "site must be" },
	{ "{ site = 5 }", "site must be" },
	{ "{ pool = 'nope' }", "pool must name a declared pool or "
	    "\"default\" (got \"nope\")" },
	{ "{ pool = '' }", "pool must name" },
	{ "{ route = 'a b' }", "route must be 1 to 64" },
	{ "{ port = 0 }", "port must be a whole number from 1 to 65535" },
	{ "{ port = 65536 }", "port must be" },
	{ "{ port = 25.5 }", "port must be" },
	{ "{ port = '25' }", "port must be" },
	{ "{ hosts = 'mx.example' }", "hosts is a string" },
	{ "{ hosts = {} }", "hosts must list 1 to 16" },
	{ "{ hosts = { 'bad host' } }", "hosts[1] is not a host name" },
	{ "{ hosts = { [2] = 'mx.example' } }", "without holes" },
	{ "{ hosts = { x = 'mx.example' } }", "array of 1 to 16" },
	{ "{ hosts = { 'a','b','c','d','e','f','g','h','i','j','k','l','m',"
	    "'n','o','p','q' } }", "array of 1 to 16" },
	{ "{ sites = 'gmail' }", "unknown field \"sites\"" },
	{ "{ 'gmail' }", "a key that is not a field name" },
};

static void
test_route_invalid_answers(void **state)
{
	struct fixture *f = *state;
	struct policy_route_out out;

	for (size_t i = 0; i < ARRAY_SIZE(bad_routes); i++) {
		logged[0] = '\0';
		start_route(f, bad_routes[i].answer);
		if (route(f->ps, &out) != POLICY_QUEUE_FAILED)
			fail_msg("answer %s: got a result other than FAILED",
			    bad_routes[i].answer);
		assert_string_equal(out.site, "mxset");
		assert_logged("PANIC " TEST_MSGID " policy route handler failed "
		    "at ");
		assert_logged("policy.lua:3: invalid return value: ");
		if (strstr(logged, bad_routes[i].problem) == NULL)
			fail_msg("answer %s: log has no \"%s\"; got:\n%s",
			    bad_routes[i].answer, bad_routes[i].problem, logged);
		policy_state_unref(f->ps);
		f->ps = NULL;
		policy_stop();
		config_free(f->config);
		f->config = NULL;
	}
}

static void
test_route_raise_logged(void **state)
{
	struct fixture *f = *state;
	struct policy_route_out out;

	start_ok(f, "sluice.on('route', function(msg)\n"
	    "  error('no route for ' .. msg.id)\n"
	    "end)\n");
	assert_int_equal(route(f->ps, &out), POLICY_QUEUE_FAILED);
	assert_logged("PANIC " TEST_MSGID " policy route handler failed at "
	    "policy.lua:2: no route for " TEST_MSGID);
}

/* ---- select_source ---- */

static void
test_select_source_by_name_and_ip(void **state)
{
	struct fixture *f = *state;
	size_t index = 99;

	start_ok(f, "sluice.on('select_source', function(path)\n"
	    "  assert(path.site == 'gmail' and path.pool == 'bulk')\n"
	    "  assert(path.class == 'newsletter' and path.domain == "
	    "'gmail.test')\n"
	    "  assert(path.msg_id == '" TEST_MSGID "' and #path.sources == 3)\n"
	    "  local s = path.sources\n"
	    "  assert(s[1].name == 'ip1' and s[1].ip == '127.0.0.2' and"
	    " s[1].score == 80)\n"
	    "  assert(s[2].suspended == true and s[2].warmup_day == 3)\n"
	    "  assert(s[3].over_cap == true and s[3].sent_today == 5000)\n"
	    "  if path.domain == 'gmail.test' then return '::1' end\n"
	    "end)\n");
	assert_int_equal(policy_select_source(f->ps, &test_path_in, &index),
	    POLICY_QUEUE_OK);
	assert_int_equal(index, 2);
	assert_string_equal(logged, "");
	policy_state_unref(f->ps);
	f->ps = NULL;
	policy_stop();
	config_free(f->config);

	start_ok(f, "sluice.on('select_source', function(path)\n"
	    "  return 'ip2'\n"
	    "end)\n");
	assert_int_equal(policy_select_source(f->ps, &test_path_in, &index),
	    POLICY_QUEUE_OK);
	assert_int_equal(index, 1);
}

static void
test_select_source_invalid(void **state)
{
	struct fixture *f = *state;
	size_t index = 99;

	start_ok(f, "local n = 0\n"
	    "sluice.on('select_source', function(path)\n"
	    "  n = n + 1\n"
	    "  if n == 1 then return 'ip9' end\n"
	    "  if n == 2 then return { 'ip1' } end\n"
	    "  return nil\n"
	    "end)\n");
	assert_int_equal(policy_select_source(f->ps, &test_path_in, &index),
	    POLICY_QUEUE_FAILED);
	assert_logged("PANIC " TEST_MSGID " policy select_source handler "
	    "failed at policy.lua:2: invalid return value: returned \"ip9\", "
	    "which is not a source of pool \"bulk\"");
	assert_int_equal(policy_select_source(f->ps, &test_path_in, &index),
	    POLICY_QUEUE_FAILED);
	assert_logged("returned a table; expected a source name");
	assert_int_equal(policy_select_source(f->ps, &test_path_in, &index),
	    POLICY_QUEUE_DEFAULT);
	assert_int_equal(index, 99);
}

/* ---- shaping ---- */

static void
test_shaping_answer(void **state)
{
	struct fixture *f = *state;
	struct policy_shaping s = { .max_connections = 3, .burst = 9 };

	start_ok(f, "sluice.on('shaping', function(path)\n"
	    "  assert(path.source == 'ip1' and path.ip == '127.0.0.2')\n"
	    "  assert(path.site == 'gmail' and path.pool == 'bulk')\n"
	    "  return { max_connections = 2, max_message_rate = '600/m',\n"
	    "    max_messages_per_connection = 50,"
	    " max_recipients_per_message = 100,\n"
	    "    daily_cap = 5000 }\n"
	    "end)\n");
	assert_int_equal(policy_shaping(f->ps, &test_shaping_in, &s),
	    POLICY_QUEUE_OK);
	assert_int_equal(s.max_connections, 2);
	assert_true(s.rate_per_second > 9.999 && s.rate_per_second < 10.001);
	assert_int_equal(s.burst, 9);
	assert_int_equal(s.max_messages_per_connection, 50);
	assert_int_equal(s.max_recipients_per_message, 100);
	assert_int_equal(s.daily_cap, 5000);
}

static const struct {
	const char *answer;
	const char *problem;
} bad_shapings[] = {
	{ "5", "returned a number; expected a table or nil" },
	{ "{ max_connections = 10001 }", "max_connections must be a whole "
	    "number from 0 to 10000" },
	{ "{ max_connections = -1 }", "max_connections must be" },
	{ "{ max_connections = 1.5 }", "max_connections must be" },
	{ "{ max_connections = 0/0 }", "max_connections must be" },
	{ "{ burst = 1000001 }", "burst must be a whole number from 0 to "
	    "1000000" },
	{ "{ daily_cap = 1e13 }", "daily_cap must be" },
	{ "{ max_recipients_per_message = '5' }", "max_recipients_per_message "
	    "must be" },
	{ "{ max_message_rate = '15/x' }", "max_message_rate must be a rate" },
	{ "{ max_message_rate = '0/s' }", "max_message_rate must be" },
	{ "{ max_message_rate = '1000000001/s' }", "max_message_rate must be" },
	{ "{ max_message_rate = 15 }", "max_message_rate must be" },
	{ "{ rate = '15/s' }", "unknown field \"rate\"" },
};

static void
test_shaping_invalid(void **state)
{
	struct fixture *f = *state;
	char policy[512];

	for (size_t i = 0; i < ARRAY_SIZE(bad_shapings); i++) {
		struct policy_shaping s = { .max_connections = 3 };

		logged[0] = '\0';
		snprintf(policy, sizeof(policy), "sluice.on('shaping', "
		    "function(path)\n  return %s\nend)\n", bad_shapings[i].answer);
		start_ok(f, policy);
		if (policy_shaping(f->ps, &test_shaping_in, &s) !=
		    POLICY_QUEUE_FAILED)
			fail_msg("answer %s: got a result other than FAILED",
			    bad_shapings[i].answer);
		assert_int_equal(s.max_connections, 3);
		assert_logged("policy shaping handler failed at policy.lua:1: "
		    "invalid return value: ");
		if (strstr(logged, bad_shapings[i].problem) == NULL)
			fail_msg("answer %s: log has no \"%s\"; got:\n%s",
			    bad_shapings[i].answer, bad_shapings[i].problem,
			    logged);
		policy_state_unref(f->ps);
		f->ps = NULL;
		policy_stop();
		config_free(f->config);
		f->config = NULL;
	}
}

/* ---- delivery_result and sluice.suspend ---- */

static void
test_delivery_result_suspends(void **state)
{
	struct fixture *f = *state;

	policy_set_suspend_fn(test_suspend, &suspended);
	start_ok(f, "sluice.on('delivery_result', function(res)\n"
	    "  assert(res.msg_id == '" TEST_MSGID "' and res.outcome =="
	    " 'deferred')\n"
	    "  assert(res.source == 'ip2' and res.source_ip == '127.0.0.3')\n"
	    "  assert(res.site == 'gmail' and res.pool == 'bulk' and"
	    " res.domain == 'gmail.test')\n"
	    "  assert(res.host == 'mx.gmail.test' and res.host_ip =="
	    " '127.0.0.20')\n"
	    "  assert(res.code == 421 and res.enhanced_code == '4.7.28')\n"
	    "  assert(res.class == 'newsletter' and res.tenant == 'acme' and"
	    " res.campaign == 'spring')\n"
	    "  assert(res.queue_time == 12.5 and res.recipients == 2)\n"
	    "  assert(not pcall(function() res.code = 250 end))\n"
	    "  if res.reply:find('unusual rate') then\n"
	    "    sluice.suspend(res.path, 3600, 'rate limited by ' .. res.site)\n"
	    "  end\n"
	    "end)\n");
	policy_delivery_result(f->ps, &test_result);
	assert_string_equal(logged, "");
	assert_int_equal(suspended.calls, 1);
	assert_string_equal(suspended.source, "ip2");
	assert_string_equal(suspended.site, "gmail");
	assert_int_equal(suspended.seconds, 3600);
	assert_string_equal(suspended.reason, "rate limited by gmail");
}

static void
test_delivery_result_path_from_ip(void **state)
{
	struct fixture *f = *state;
	struct policy_delivery_result res = test_result;

	policy_set_suspend_fn(test_suspend, &suspended);
	start_ok(f, "sluice.on('delivery_result', function(res)\n"
	    "  if res.path then sluice.suspend(res.path, 60) else"
	    " sluice.suspend('none', 60) end\n"
	    "end)\n");
	res.source_name = "";
	policy_delivery_result(f->ps, &res);
	assert_string_equal(suspended.source, "127.0.0.3");
	assert_string_equal(suspended.site, "gmail");
	assert_string_equal(suspended.reason, "");

	res.source_ip = "";
	policy_delivery_result(f->ps, &res);
	assert_int_equal(suspended.calls, 2);
	assert_string_equal(suspended.source, "none");
	assert_string_equal(suspended.site, "");
}

static const struct {
	const char *call;
	const char *error;
} bad_suspends[] = {
	{ "sluice.suspend('a b', 60)", "expected \"source\" or "
	    "\"source/site\"" },
	{ "sluice.suspend('', 60)", "expected \"source\"" },
	{ "sluice.suspend('ip1/', 60)", "the site after '/' must be" },
	{ "sluice.suspend('ip1/a/b', 60)", "the site after '/' must be" },
	{ "sluice.suspend('ip1', 0)", "expected whole seconds from 1 to "
	    "2592000" },
	{ "sluice.suspend('ip1', 2592001)", "expected whole seconds" },
	{ "sluice.suspend('ip1', 1.5)", "expected whole seconds" },
	{ "sluice.suspend('ip1', 60, string.rep('r', 257))",
	    "a reason has at most 256 bytes" },
	{ "sluice.suspend('ip1', 60, 'a\\nb')", "control characters" },
	{ "sluice.suspend('ip1', 60, {})", "string expected" },
};

static void
test_suspend_invalid(void **state)
{
	struct fixture *f = *state;
	char policy[512];

	policy_set_suspend_fn(test_suspend, &suspended);
	for (size_t i = 0; i < ARRAY_SIZE(bad_suspends); i++) {
		logged[0] = '\0';
		snprintf(policy, sizeof(policy), "sluice.on('delivery_result', "
		    "function(res)\n  %s\nend)\n", bad_suspends[i].call);
		start_ok(f, policy);
		policy_delivery_result(f->ps, &test_result);
		assert_logged("PANIC " TEST_MSGID " policy delivery_result "
		    "handler failed at policy.lua:2: ");
		if (strstr(logged, bad_suspends[i].error) == NULL)
			fail_msg("%s: log has no \"%s\"; got:\n%s",
			    bad_suspends[i].call, bad_suspends[i].error, logged);
		policy_state_unref(f->ps);
		f->ps = NULL;
		policy_stop();
		config_free(f->config);
		f->config = NULL;
	}
	assert_int_equal(suspended.calls, 0);
}

static void
test_suspend_without_scheduler(void **state)
{
	struct fixture *f = *state;

	start_ok(f, "sluice.on('delivery_result', function(res)\n"
	    "  sluice.suspend('ip1/gmail', 60, 'test')\n"
	    "end)\n");
	policy_delivery_result(f->ps, &test_result);
	assert_logged("sluice.suspend(): no scheduler is running");

	logged[0] = '\0';
	suspended.fail = true;
	policy_set_suspend_fn(test_suspend, &suspended);
	policy_delivery_result(f->ps, &test_result);
	assert_int_equal(suspended.calls, 1);
	assert_logged("sluice.suspend(\"ip1/gmail\"): unknown source ip1");
}

/* ---- budgets ---- */

static void
test_route_time_budget(void **state)
{
	struct fixture *f = *state;
	struct policy_route_out out;

	start_ok(f, "sluice.on('route', function()\n"
	    "  local i = 0\n"
	    "  while true do i = i + 1 end\n"
	    "end)\n");
	assert_int_equal(route(f->ps, &out), POLICY_QUEUE_FAILED);
	assert_logged(TEST_MSGID " policy route handler failed at ");
	assert_logged("time budget exceeded");
	assert_string_equal(out.site, "mxset");
}

static void
test_shaping_memory_budget(void **state)
{
	struct fixture *f = *state;
	struct policy_shaping s = { 0 };
	char *error = NULL;

	if (start(f, "sluice.on('shaping', function()\n"
	    "  local t = {}\n"
	    "  for i = 1, 1e8 do t[i] = string.rep('x', 64) .. i end\n"
	    "end)\n", "lua_memory_limit = 4M\nlua_time_limit = 10000\n",
	    &error) < 0)
		fail_msg("policy_start: %s", error);
	assert_int_equal(policy_shaping(f->ps, &test_shaping_in, &s),
	    POLICY_QUEUE_FAILED);
	assert_logged("policy shaping handler failed at ");
	assert_logged("not enough memory (lua_memory_limit is ");
}

/* The commented examples of the shipped default.lua, uncommented: lines
 * starting "-- sluice.", "--   " or "-- end)" lose their "-- ". */
static void
test_default_policy_examples(void **state)
{
	struct fixture *f = *state;
	FILE *in = fopen(SLUICE_SRCDIR "/scripts/default.lua", "r");
	static char policy[16384];
	struct policy_route_out out;
	struct policy_shaping s = { 0 };
	char line[512];
	size_t used = 0;

	assert_non_null(in);
	while (fgets(line, sizeof(line), in) != NULL) {
		const char *text = line;

		if (strncmp(line, "-- sluice.", 10) == 0 ||
		    strncmp(line, "--   ", 5) == 0 ||
		    strncmp(line, "-- end)", 7) == 0)
			text = line + 3;
		used += (size_t)snprintf(policy + used, sizeof(policy) - used,
		    "%s", text);
		assert_true(used < sizeof(policy));
	}
	fclose(in);
	policy_set_suspend_fn(test_suspend, &suspended);
	start_ok(f, policy);

	policy_declarations_get(f->ps, f->decls);
	assert_int_equal(f->decls->source_count, 2);
	assert_int_equal(f->decls->pool_count, 2);
	assert_string_equal(f->decls->classes[3].pool, "bulk");
	assert_int_equal(route(f->ps, &out), POLICY_QUEUE_OK);
	assert_string_equal(out.site, "gmail");
	assert_int_equal(policy_shaping(f->ps, &test_shaping_in, &s),
	    POLICY_QUEUE_OK);
	assert_int_equal(s.max_connections, 5);
	assert_int_equal(s.burst, 20);
	policy_delivery_result(f->ps, &test_result);
	assert_int_equal(suspended.calls, 1);
	assert_string_equal(suspended.source, "ip2");
	assert_string_equal(logged, "");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_no_policy_defaults, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_no_handler_defaults, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_declarations_kept, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_declared_default_pool_replaces, setup, teardown),
		cmocka_unit_test_setup_teardown(test_declarations_invalid, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_declarations_only_while_loading, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_caught_class_error_keeps_default, setup, teardown),
		cmocka_unit_test_setup_teardown(test_route_arguments_and_answer,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_route_partial_answer_keeps_defaults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_route_nil_is_default, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_route_invalid_answers, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_route_raise_logged, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_select_source_by_name_and_ip,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_select_source_invalid, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_shaping_answer, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_shaping_invalid, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_delivery_result_suspends,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_delivery_result_path_from_ip,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_suspend_invalid, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_suspend_without_scheduler,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_route_time_budget, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_shaping_memory_budget, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_default_policy_examples,
		    setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * fuzz_policy_return.c - libFuzzer target for the checks of what the
 * queue-side policy handlers return (lua/policy_queue.c; see
 * tests/fuzz/README.md).
 *
 * The input is a small program that builds one Lua value. Each byte is
 * an operation: push nil, a boolean, a number, a string from the input
 * or from a list of field names and rates, or a new table, or store
 * values into the table below them. The value then goes
 * through the route, select_source and shaping checks, and, when it is
 * a string, through the rate parser. What must hold:
 *  - a check returns 1, 0 only for nil, or -1 with a problem text;
 *  - an accepted route has a valid site, a declared pool, a valid route
 *    name, 1 to 16 valid hosts (or none) and a port within 0..65535;
 *  - an accepted source is an index into the sources offered;
 *  - accepted shaping stays within its bounds;
 *  - no check leaves anything on the Lua stack.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "policy_private.h"
#include "policy_tables.h"

/* Bounds on what one input builds. */
#define FUZZ_STACK_MAX		32
#define FUZZ_OPS_MAX		4096

static const char *const fuzz_words[] = {
	"site", "pool", "hosts", "port", "route", "max_connections",
	"max_message_rate", "burst", "max_messages_per_connection",
	"max_recipients_per_message", "daily_cap", "gmail", "bulk",
	"default", "ip1", "127.0.0.2", "::1", "mx.example.net", "15/s",
	"600/m", "10000/h", "5000/d", "0/s", "1000000000/s", "a b", "a/b",
	"", "[127.0.0.1]",
};

static const struct policy_source_choice fuzz_sources[] = {
	{ "ip1", "127.0.0.2", 50, false, false, 0, 0 },
	{ "", "::1", 10, true, true, 2, 100 },
};

static const struct policy_path_in fuzz_path = {
	.msgid = "1tt1Jd-00000000CXd-1jGj", .site = "gmail", .pool = "bulk",
	.class_name = "personal", .domain = "example.net",
	.sources = fuzz_sources, .source_count = 2,
};

/* One pool, "bulk", besides "default". Static: the structure is large. */
static struct policy_declarations fuzz_decls;

struct fuzz_input {
	const uint8_t *data;
	size_t size;
};

static void
fail(const char *what)
{
	fprintf(stderr, "fuzz_policy_return: %s\n", what);
	abort();
}

static uint8_t
next_byte(struct fuzz_input *in)
{
	uint8_t b;

	if (in->size == 0)
		return 0;
	b = in->data[0];
	in->data++;
	in->size--;
	return b;
}

/* Runs the input's operations; leaves one value on the stack. */
static void
build_value(lua_State *L, struct fuzz_input *in)
{
	int base = lua_gettop(L);

	for (int ops = 0; in->size > 0 && ops < FUZZ_OPS_MAX; ops++) {
		uint8_t op = next_byte(in) % 9;
		int depth = lua_gettop(L) - base;

		if (op <= 5 && depth >= FUZZ_STACK_MAX)
			continue;
		switch (op) {
		case 0:
			lua_pushnil(L);
			break;
		case 1:
			lua_pushboolean(L, next_byte(in) & 1);
			break;
		case 2:
			lua_pushnumber(L, (int8_t)next_byte(in));
			break;
		case 3: {
			uint64_t bits = 0;
			double d;

			for (int i = 0; i < 8; i++)
				bits = bits << 8 | next_byte(in);
			memcpy(&d, &bits, sizeof(d));
			lua_pushnumber(L, d);
			break;
		}
		case 4: {
			size_t len = next_byte(in);

			if (len > in->size)
				len = in->size;
			lua_pushlstring(L, (const char *)in->data, len);
			in->data += len;
			in->size -= len;
			break;
		}
		case 5:
			lua_pushstring(L, fuzz_words[next_byte(in) %
			    (sizeof(fuzz_words) / sizeof(fuzz_words[0]))]);
			break;
		case 6:
			if (depth < FUZZ_STACK_MAX)
				lua_newtable(L);
			break;
		case 7:
			/* table key value: table[key] = value */
			if (depth >= 3 && lua_type(L, -3) == LUA_TTABLE &&
			    !lua_isnil(L, -2) && !(lua_type(L, -2) ==
			    LUA_TNUMBER && isnan(lua_tonumber(L, -2))))
				lua_rawset(L, -3);
			else if (depth >= 2)
				lua_pop(L, 2);
			break;
		case 8:
			/* table value: append value */
			if (depth >= 2 && lua_type(L, -2) == LUA_TTABLE)
				lua_rawseti(L, -2, (int)lua_objlen(L, -2) + 1);
			else if (depth >= 1)
				lua_pop(L, 1);
			break;
		}
	}
	if (lua_gettop(L) == base)
		lua_pushnil(L);
	lua_replace(L, base + 1);
	lua_settop(L, base + 1);
}

static void
check_route(lua_State *L, int rc, const struct policy_route_out *out,
    const char *problem)
{
	if (rc == 0 && !lua_isnil(L, 1))
		fail("route: 0 for a value that is not nil");
	if (rc < 0 && problem[0] == '\0')
		fail("route: rejected without a problem text");
	if (rc != 1)
		return;
	if (strcmp(out->site, "preset") != 0 &&
	    !policy_queue_site_ok(out->site, strlen(out->site)))
		fail("route: accepted an invalid site");
	if (!policy_declarations_has_pool(&fuzz_decls, out->pool))
		fail("route: accepted an undeclared pool");
	if (!policy_queue_name_ok(out->route, strlen(out->route)))
		fail("route: accepted an invalid route name");
	if (out->host_count > POLICY_ROUTE_HOSTS_MAX)
		fail("route: too many hosts");
	for (size_t i = 0; i < out->host_count; i++)
		if (!policy_queue_host_ok(out->hosts[i], strlen(out->hosts[i])) &&
		    !policy_queue_ip_ok(out->hosts[i], strlen(out->hosts[i])))
			fail("route: accepted an invalid host");
	if (out->port < 0 || out->port > 65535)
		fail("route: port out of range");
}

static void
check_shaping(lua_State *L, int rc, const struct policy_shaping *s,
    const char *problem)
{
	if (rc == 0 && !lua_isnil(L, 1))
		fail("shaping: 0 for a value that is not nil");
	if (rc < 0 && problem[0] == '\0')
		fail("shaping: rejected without a problem text");
	if (rc != 1)
		return;
	if (s->max_connections > 10000 || s->burst > POLICY_THROTTLE_BURST_MAX ||
	    s->max_messages_per_connection > 1000000 ||
	    s->max_recipients_per_message > 1000000 ||
	    s->daily_cap > 1000000000000ULL)
		fail("shaping: a count out of bounds");
	if (!(s->rate_per_second >= 0 && s->rate_per_second <= 1e9))
		fail("shaping: rate out of bounds");
}

/* Runs in protected mode: builds the value and checks it three ways. */
static int
fuzz_run(lua_State *L)
{
	struct fuzz_input *in = lua_touserdata(L, 1);
	struct policy_route_out route;
	struct policy_shaping shaping;
	struct policy_rate rate;
	char problem[320];
	size_t index = SIZE_MAX;
	int rc;

	lua_settop(L, 0);
	build_value(L, in);

	memset(&route, 0, sizeof(route));
	snprintf(route.site, sizeof(route.site), "preset");
	snprintf(route.pool, sizeof(route.pool), "default");
	snprintf(route.route, sizeof(route.route), "dnslookup");
	problem[0] = '\0';
	rc = policy_queue_check_route(L, 1, &fuzz_decls, &route, problem,
	    sizeof(problem));
	if (lua_gettop(L) != 1)
		fail("route: the stack changed");
	check_route(L, rc, &route, problem);

	problem[0] = '\0';
	rc = policy_queue_check_source(L, 1, &fuzz_path, &index, problem,
	    sizeof(problem));
	if (lua_gettop(L) != 1)
		fail("select_source: the stack changed");
	if (rc == 1 && index >= fuzz_path.source_count)
		fail("select_source: index out of range");
	if (rc < 0 && problem[0] == '\0')
		fail("select_source: rejected without a problem text");

	memset(&shaping, 0, sizeof(shaping));
	problem[0] = '\0';
	rc = policy_queue_check_shaping(L, 1, &shaping, problem,
	    sizeof(problem));
	if (lua_gettop(L) != 1)
		fail("shaping: the stack changed");
	check_shaping(L, rc, &shaping, problem);

	if (lua_type(L, 1) == LUA_TSTRING &&
	    policy_rate_parse(lua_tostring(L, 1), &rate) == 0 &&
	    !(rate.per_second > 0 && rate.per_second <= 1e9))
		fail("rate: accepted a rate out of bounds");
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static lua_State *L;
	struct fuzz_input in = { data, size };

	if (L == NULL) {
		if ((L = luaL_newstate()) == NULL)
			fail("cannot create a Lua state");
		snprintf(fuzz_decls.pools[0].name, sizeof(fuzz_decls.pools[0].name),
		    "bulk");
		fuzz_decls.pool_count = 1;
	}
	if (lua_cpcall(L, fuzz_run, &in) != 0) {
		/* Only a memory error may end the run early. */
		const char *message = lua_tostring(L, -1);

		if (message == NULL || strstr(message, "memory") == NULL)
			fail(message != NULL ? message : "error without a message");
		lua_pop(L, 1);
	}
	lua_gc(L, LUA_GCCOLLECT, 0);
	return 0;
}

/*
 * policy_tables_lua.c - sluice.counters, sluice.throttles,
 * sluice.scores, sluice.warmup and sluice.suppress: Lua objects whose methods reach the C tables of
 * policy_tables.h directly, so nothing is copied into Lua.
 *
 * Each object is an empty userdata of its own class. Every method checks
 * its self argument against the class (luaL_checkudata), so
 * sluice.counters.incr("x") or a method called on the wrong table raises
 * a clear error instead of reading the name as self.
 */
#include <math.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "policy_tables.h"
#include "util.h"

#define POLICY_COUNTERS_CLASS	"sluice.counters"
#define POLICY_THROTTLES_CLASS	"sluice.throttles"
#define POLICY_SCORES_CLASS	"sluice.scores"
#define POLICY_WARMUP_CLASS	"sluice.warmup"
#define POLICY_SUPPRESS_CLASS	"sluice.suppress"

/* Returns the name argument at idx, bounded by POLICY_TABLE_KEY_MAX.
 * NUL bytes are refused, as in every other table key, which keeps the
 * saved files' layout key apart from the entries. */
static const char *
policy_tables_check_name(lua_State *L, int idx, size_t *len)
{
	const char *name = luaL_checklstring(L, idx, len);

	if (*len == 0 || *len > POLICY_TABLE_KEY_MAX ||
	    memchr(name, '\0', *len) != NULL)
		luaL_argerror(L, idx, lua_pushfstring(L,
		    "name must be 1 to %d bytes without NUL",
		    POLICY_TABLE_KEY_MAX));
	return name;
}

/* Returns the optional whole-number argument at idx, between min and
 * max, or def when it is absent. */
static uint64_t
policy_tables_check_count(lua_State *L, int idx, uint64_t def, uint64_t min,
    uint64_t max)
{
	lua_Number n;

	if (lua_isnoneornil(L, idx))
		return def;
	n = luaL_checknumber(L, idx);
	if (n != floor(n) || n < (lua_Number)min || n > (lua_Number)max)
		luaL_argerror(L, idx, lua_pushfstring(L,
		    "expected a whole number from %f to %f", (lua_Number)min,
		    (lua_Number)max));
	return (uint64_t)n;
}

static enum policy_window_span
policy_tables_check_span(lua_State *L, int idx)
{
	int span = policy_window_span_parse(luaL_checkstring(L, idx));

	if (span < 0)
		luaL_argerror(L, idx,
		    "window must be \"second\", \"minute\", \"hour\" or \"day\"");
	return span;
}

static void
policy_tables_check_rate(lua_State *L, int idx, struct policy_rate *rate)
{
	if (policy_rate_parse(luaL_checkstring(L, idx), rate) < 0)
		luaL_argerror(L, idx, "rate must be N/s, N/m, N/h or N/d "
		    "with N from 1 to 1000000000");
}

/* ---- counters ---- */

/* counters:incr(name [, n]): adds n (default 1); returns the total. */
static int
policy_counters_lua_incr(lua_State *L)
{
	size_t len;
	const char *name;
	uint64_t n;

	luaL_checkudata(L, 1, POLICY_COUNTERS_CLASS);
	name = policy_tables_check_name(L, 2, &len);
	n = policy_tables_check_count(L, 3, 1, 0, UINT32_MAX);
	if (policy_counters_incr(name, len, (uint32_t)n) < 0)
		return luaL_error(L, "counters:incr: invalid name");
	lua_pushnumber(L, (lua_Number)policy_counters_get(name, len));
	return 1;
}

static int
policy_counters_lua_get(lua_State *L)
{
	size_t len;
	const char *name;

	luaL_checkudata(L, 1, POLICY_COUNTERS_CLASS);
	name = policy_tables_check_name(L, 2, &len);
	lua_pushnumber(L, (lua_Number)policy_counters_get(name, len));
	return 1;
}

static int
policy_counters_lua_rate(lua_State *L)
{
	size_t len;
	const char *name;
	enum policy_window_span span;

	luaL_checkudata(L, 1, POLICY_COUNTERS_CLASS);
	name = policy_tables_check_name(L, 2, &len);
	span = policy_tables_check_span(L, 3);
	lua_pushnumber(L, (lua_Number)policy_counters_rate(name, len, span));
	return 1;
}

static int
policy_counters_lua_today(lua_State *L)
{
	size_t len;
	const char *name;

	luaL_checkudata(L, 1, POLICY_COUNTERS_CLASS);
	name = policy_tables_check_name(L, 2, &len);
	lua_pushnumber(L, (lua_Number)policy_counters_today(name, len));
	return 1;
}

/* ---- throttles ---- */

/* throttles:try(name, rate [, burst]): true, or false and the seconds
 * until a token is free. */
static int
policy_throttles_lua_try(lua_State *L)
{
	struct policy_rate rate;
	size_t len;
	const char *name;
	uint64_t burst, wait_usec;
	int rc;

	luaL_checkudata(L, 1, POLICY_THROTTLES_CLASS);
	name = policy_tables_check_name(L, 2, &len);
	policy_tables_check_rate(L, 3, &rate);
	burst = policy_tables_check_count(L, 4, 1, 1, POLICY_THROTTLE_BURST_MAX);
	rc = policy_throttles_try(name, len, &rate, (uint32_t)burst, &wait_usec);
	if (rc < 0)
		return luaL_error(L, "throttles:try: invalid arguments");
	lua_pushboolean(L, rc);
	if (rc == 1)
		return 1;
	lua_pushnumber(L, (lua_Number)wait_usec / 1e6);
	return 2;
}

/* throttles:set_rate(name, rate, seconds): a temporary rate. */
static int
policy_throttles_lua_set_rate(lua_State *L)
{
	struct policy_rate rate;
	size_t len;
	const char *name;
	uint64_t seconds;

	luaL_checkudata(L, 1, POLICY_THROTTLES_CLASS);
	name = policy_tables_check_name(L, 2, &len);
	policy_tables_check_rate(L, 3, &rate);
	seconds = policy_tables_check_count(L, 4, 0, 1, 366 * 86400);
	if (seconds == 0)
		return luaL_argerror(L, 4, "seconds expected");
	if (policy_throttles_set_rate(name, len, &rate, (uint32_t)seconds) < 0)
		return luaL_error(L, "throttles:set_rate: invalid arguments");
	return 0;
}

/* ---- scores ---- */

/* Checks self, ip and site, the first three arguments of every score
 * method. */
static void
policy_scores_lua_check_pair(lua_State *L, const char **ip, const char **site)
{
	size_t ip_len, site_len;

	luaL_checkudata(L, 1, POLICY_SCORES_CLASS);
	*ip = luaL_checklstring(L, 2, &ip_len);
	*site = luaL_checklstring(L, 3, &site_len);
	if (ip_len == 0 || ip_len > 255 || memchr(*ip, '\0', ip_len) != NULL)
		luaL_argerror(L, 2, "ip must be 1 to 255 bytes, without NUL");
	if (site_len == 0 || site_len > 255 ||
	    memchr(*site, '\0', site_len) != NULL)
		luaL_argerror(L, 3, "site must be 1 to 255 bytes, without NUL");
}

static lua_Number
policy_scores_lua_check_number(lua_State *L, int idx)
{
	lua_Number v = luaL_checknumber(L, idx);

	if (isnan(v) || isinf(v))
		luaL_argerror(L, idx, "finite number expected");
	return v;
}

static enum policy_outcome
policy_scores_lua_check_outcome(lua_State *L, int idx)
{
	int outcome = policy_outcome_parse(luaL_checkstring(L, idx));

	if (outcome < 0)
		luaL_argerror(L, idx, "outcome must be \"delivered\", "
		    "\"deferred\", \"failed\" or \"complained\"");
	return outcome;
}

static int
policy_scores_lua_get(lua_State *L)
{
	const char *ip, *site;

	policy_scores_lua_check_pair(L, &ip, &site);
	lua_pushnumber(L, policy_scores_get(ip, site));
	return 1;
}

static int
policy_scores_lua_set(lua_State *L)
{
	const char *ip, *site;
	lua_Number v;

	policy_scores_lua_check_pair(L, &ip, &site);
	v = policy_scores_lua_check_number(L, 4);
	lua_pushnumber(L, policy_scores_set(ip, site, v));
	return 1;
}

static int
policy_scores_lua_adjust(lua_State *L)
{
	const char *ip, *site;
	lua_Number delta;

	policy_scores_lua_check_pair(L, &ip, &site);
	delta = policy_scores_lua_check_number(L, 4);
	lua_pushnumber(L, policy_scores_adjust(ip, site, delta));
	return 1;
}

static int
policy_scores_lua_record(lua_State *L)
{
	const char *ip, *site;
	enum policy_outcome outcome;

	policy_scores_lua_check_pair(L, &ip, &site);
	outcome = policy_scores_lua_check_outcome(L, 4);
	lua_pushnumber(L, policy_scores_record(ip, site, outcome));
	return 1;
}

/* scores:outcomes(ip, site, outcome, window): count within window. */
static int
policy_scores_lua_outcomes(lua_State *L)
{
	const char *ip, *site;
	enum policy_outcome outcome;
	enum policy_window_span span;

	policy_scores_lua_check_pair(L, &ip, &site);
	outcome = policy_scores_lua_check_outcome(L, 4);
	span = policy_tables_check_span(L, 5);
	lua_pushnumber(L, (lua_Number)policy_scores_outcomes(ip, site, outcome,
	    span));
	return 1;
}

/* Appends { ip, site, score } to the array at stack index -1. */
static int
policy_scores_lua_collect(const char *ip, const char *site, double score,
    void *arg)
{
	lua_State *L = arg;
	int n = (int)lua_objlen(L, -1);

	lua_createtable(L, 3, 0);
	lua_pushstring(L, ip);
	lua_rawseti(L, -2, 1);
	lua_pushstring(L, site);
	lua_rawseti(L, -2, 2);
	lua_pushnumber(L, score);
	lua_rawseti(L, -2, 3);
	lua_rawseti(L, -2, n + 1);
	return 0;
}

/*
 * scores:each(fn): calls fn(ip, site, score) for every pair, least
 * recently used first. The pairs are listed before the first call, so
 * fn may change the table; a pair evicted meanwhile is still passed.
 */
static int
policy_scores_lua_each(lua_State *L)
{
	int count;

	luaL_checkudata(L, 1, POLICY_SCORES_CLASS);
	luaL_checktype(L, 2, LUA_TFUNCTION);
	lua_settop(L, 2);
	lua_createtable(L, (int)policy_tables_size(POLICY_TABLE_SCORES), 0);
	policy_scores_each(policy_scores_lua_collect, L);
	count = (int)lua_objlen(L, 3);
	for (int i = 1; i <= count; i++) {
		lua_rawgeti(L, 3, i);		/* the pair, at index 4 */
		lua_pushvalue(L, 2);
		lua_rawgeti(L, 4, 1);
		lua_rawgeti(L, 4, 2);
		lua_rawgeti(L, 4, 3);
		lua_call(L, 3, 0);
		lua_pop(L, 1);
	}
	return 0;
}

/* ---- warm-up ---- */

/* Returns the string argument at idx: 1 to max bytes without NUL. */
static const char *
policy_tables_check_text(lua_State *L, int idx, size_t max)
{
	size_t len;
	const char *text = luaL_checklstring(L, idx, &len);

	if (len == 0 || len > max || memchr(text, '\0', len) != NULL)
		luaL_argerror(L, idx, lua_pushfstring(L,
		    "expected 1 to %d bytes without NUL", (int)max));
	return text;
}

/* warmup:start(ip, plan): the current day of ip's plan. */
static int
policy_warmup_lua_start(lua_State *L)
{
	const char *ip, *plan;

	luaL_checkudata(L, 1, POLICY_WARMUP_CLASS);
	ip = policy_tables_check_text(L, 2, POLICY_WARMUP_IP_MAX);
	plan = policy_tables_check_text(L, 3, POLICY_WARMUP_PLAN_MAX);
	lua_pushinteger(L, policy_warmup_start(ip, plan));
	return 1;
}

static int
policy_warmup_lua_day(lua_State *L)
{
	const char *ip;

	luaL_checkudata(L, 1, POLICY_WARMUP_CLASS);
	ip = policy_tables_check_text(L, 2, POLICY_WARMUP_IP_MAX);
	lua_pushinteger(L, policy_warmup_day(ip));
	return 1;
}

static int
policy_warmup_lua_plan(lua_State *L)
{
	const char *ip, *plan;

	luaL_checkudata(L, 1, POLICY_WARMUP_CLASS);
	ip = policy_tables_check_text(L, 2, POLICY_WARMUP_IP_MAX);
	plan = policy_warmup_plan(ip);
	if (plan == NULL)
		lua_pushnil(L);
	else
		lua_pushstring(L, plan);
	return 1;
}

/* warmup:sent(ip, site [, n]): counts n sends (default 1). */
static int
policy_warmup_lua_sent(lua_State *L)
{
	const char *ip, *site;
	uint64_t n;

	luaL_checkudata(L, 1, POLICY_WARMUP_CLASS);
	ip = policy_tables_check_text(L, 2, POLICY_WARMUP_IP_MAX);
	site = policy_tables_check_text(L, 3, 128);
	n = policy_tables_check_count(L, 4, 1, 0, UINT32_MAX);
	if (policy_warmup_sent(ip, site, (uint32_t)n) < 0)
		return luaL_error(L, "warmup:sent: ip and site are too long");
	lua_pushnumber(L, (lua_Number)policy_warmup_sent_today(ip, site));
	return 1;
}

static int
policy_warmup_lua_sent_today(lua_State *L)
{
	const char *ip, *site;

	luaL_checkudata(L, 1, POLICY_WARMUP_CLASS);
	ip = policy_tables_check_text(L, 2, POLICY_WARMUP_IP_MAX);
	site = policy_tables_check_text(L, 3, 128);
	lua_pushnumber(L, (lua_Number)policy_warmup_sent_today(ip, site));
	return 1;
}

/* ---- suppression ---- */

/* suppress:add(entry, reason [, seconds]): seconds 0 or absent for no
 * expiry. */
static int
policy_suppress_lua_add(lua_State *L)
{
	const char *entry, *reason;
	uint64_t seconds;

	luaL_checkudata(L, 1, POLICY_SUPPRESS_CLASS);
	entry = policy_tables_check_text(L, 2, POLICY_SUPPRESS_ENTRY_MAX);
	reason = policy_tables_check_text(L, 3, POLICY_SUPPRESS_REASON_MAX);
	seconds = policy_tables_check_count(L, 4, 0, 0, 10 * 366 * 86400);
	if (policy_suppress_add(entry, reason, (uint32_t)seconds) < 0)
		return luaL_error(L, "suppress:add: the reason must be printable "
		    "ASCII, or the table is full (policy_table_max_entries)");
	return 0;
}

static int
policy_suppress_lua_remove(lua_State *L)
{
	const char *entry;

	luaL_checkudata(L, 1, POLICY_SUPPRESS_CLASS);
	entry = policy_tables_check_text(L, 2, POLICY_SUPPRESS_ENTRY_MAX);
	lua_pushboolean(L, policy_suppress_remove(entry));
	return 1;
}

/* suppress:check(address): the reason, or nil. */
static int
policy_suppress_lua_check(lua_State *L)
{
	const char *address, *reason;

	luaL_checkudata(L, 1, POLICY_SUPPRESS_CLASS);
	address = policy_tables_check_text(L, 2, POLICY_SUPPRESS_ENTRY_MAX);
	reason = policy_suppress_check(address);
	if (reason == NULL)
		lua_pushnil(L);
	else
		lua_pushstring(L, reason);
	return 1;
}

/* ---- classes ---- */

static int
policy_tables_lua_newindex(lua_State *L)
{
	return luaL_error(L, "the fields of sluice's shared tables are "
	    "read-only");
}

/* Creates the class's metatable and sets an instance as field of the
 * table on top of the stack. */
static void
policy_tables_lua_class(lua_State *L, const char *class, const char *field,
    const luaL_Reg *methods)
{
	luaL_newmetatable(L, class);
	lua_newtable(L);
	for (const luaL_Reg *m = methods; m->name != NULL; m++) {
		lua_pushcfunction(L, m->func);
		lua_setfield(L, -2, m->name);
	}
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, policy_tables_lua_newindex);
	lua_setfield(L, -2, "__newindex");
	lua_pushstring(L, class);
	lua_setfield(L, -2, "__metatable");
	lua_pop(L, 1);

	lua_newuserdata(L, 1);
	luaL_getmetatable(L, class);
	lua_setmetatable(L, -2);
	lua_setfield(L, -2, field);
}

void
policy_tables_open(lua_State *L)
{
	static const luaL_Reg counters[] = {
		{ "incr", policy_counters_lua_incr },
		{ "get", policy_counters_lua_get },
		{ "rate", policy_counters_lua_rate },
		{ "today", policy_counters_lua_today },
		{ NULL, NULL },
	};
	static const luaL_Reg throttles[] = {
		{ "try", policy_throttles_lua_try },
		{ "set_rate", policy_throttles_lua_set_rate },
		{ NULL, NULL },
	};
	static const luaL_Reg scores[] = {
		{ "get", policy_scores_lua_get },
		{ "set", policy_scores_lua_set },
		{ "adjust", policy_scores_lua_adjust },
		{ "record", policy_scores_lua_record },
		{ "outcomes", policy_scores_lua_outcomes },
		{ "each", policy_scores_lua_each },
		{ NULL, NULL },
	};
	static const luaL_Reg warmup[] = {
		{ "start", policy_warmup_lua_start },
		{ "day", policy_warmup_lua_day },
		{ "plan", policy_warmup_lua_plan },
		{ "sent", policy_warmup_lua_sent },
		{ "sent_today", policy_warmup_lua_sent_today },
		{ NULL, NULL },
	};
	static const luaL_Reg suppress[] = {
		{ "add", policy_suppress_lua_add },
		{ "remove", policy_suppress_lua_remove },
		{ "check", policy_suppress_lua_check },
		{ NULL, NULL },
	};

	policy_tables_lua_class(L, POLICY_COUNTERS_CLASS, "counters", counters);
	policy_tables_lua_class(L, POLICY_THROTTLES_CLASS, "throttles",
	    throttles);
	policy_tables_lua_class(L, POLICY_SCORES_CLASS, "scores", scores);
	policy_tables_lua_class(L, POLICY_WARMUP_CLASS, "warmup", warmup);
	policy_tables_lua_class(L, POLICY_SUPPRESS_CLASS, "suppress",
	    suppress);
}

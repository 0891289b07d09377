/*
 * policy_queue.c - the queue-side events of the policy (route,
 * select_source, shaping, delivery_result; see policy_queue.h) and
 * sluice.suspend().
 *
 * Each event builds plain Lua tables from the C structures, calls the
 * handler through policy_call() (so the time budget and memory cap
 * apply) and checks what the handler returned inside the same protected
 * call. An invalid return value raises there, so the failure is logged
 * like any other handler error, with the script and line of the
 * handler, the message id and what was wrong. The checks use raw table access only,
 * so no metamethod of a returned table runs outside the budget.
 *
 * The msg table of route and the res table of delivery_result are
 * read-only views: assigning to a field raises.
 */
#include <arpa/inet.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "policy_private.h"
#include "policy_tables.h"
#include "util.h"

/* Bounds on the numbers shaping returns; 0 always means unlimited. */
#define POLICY_SHAPING_CONNECTIONS_MAX		10000
#define POLICY_SHAPING_MESSAGES_MAX		1000000
#define POLICY_SHAPING_RECIPIENTS_MAX		1000000
#define POLICY_SHAPING_DAILY_CAP_MAX		1000000000000.0
/* sluice.suspend(): at most 30 days, and a reason of at most 256 bytes. */
#define POLICY_SUSPEND_SECONDS_MAX		(30u * 86400u)
#define POLICY_SUSPEND_REASON_MAX		256
/* Room for the description of an invalid return value. */
#define POLICY_PROBLEM_SIZE			320

static struct {
	policy_suspend_fn fn;
	void *arg;
} policy_suspend;

/* ---- checks of names and values ---- */

bool
policy_queue_name_ok(const char *s, size_t len)
{
	if (len == 0 || len > POLICY_QUEUE_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
			return false;
	}
	return true;
}

bool
policy_queue_ip_ok(const char *s, size_t len)
{
	unsigned char addr[16];
	char text[64];

	if (len == 0 || len >= sizeof(text) || memchr(s, '\0', len) != NULL)
		return false;
	memcpy(text, s, len);
	text[len] = '\0';
	return inet_pton(AF_INET, text, addr) == 1 ||
	    inet_pton(AF_INET6, text, addr) == 1;
}

/* A host name as RFC 1123 2.1 allows: dot-separated labels of 1 to 63
 * letters, digits and hyphens, none starting or ending with a hyphen,
 * 255 characters in all and no trailing dot. */
bool
policy_queue_host_ok(const char *s, size_t len)
{
	size_t label = 0;

	if (len == 0 || len > POLICY_HOST_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-'))
			return false;
		if (c == '-' && label == 0)
			return false;
		if (++label > 63)
			return false;
	}
	return label > 0 && s[len - 1] != '-';
}

/* A site: 1 to 255 printable ASCII characters without spaces or '/',
 * since "source/site" names a path. */
bool
policy_queue_site_ok(const char *s, size_t len)
{
	if (len == 0 || len > POLICY_SITE_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (s[i] < 33 || s[i] > 126 || s[i] == '/')
			return false;
	return true;
}

/* The key of the pair lua_next() left at -2, or NULL for a key that is
 * not a string. Never converts the key, which would confuse
 * lua_next(). */
static const char *
policy_queue_key(lua_State *L, size_t *len)
{
	if (lua_type(L, -2) != LUA_TSTRING)
		return NULL;
	return lua_tolstring(L, -2, len);
}

/* Reads the value at -1 as a whole number from 0 to max. */
static bool
policy_queue_number(lua_State *L, double max, double *out)
{
	double v;

	if (lua_type(L, -1) != LUA_TNUMBER)
		return false;
	v = lua_tonumber(L, -1);
	if (!(v >= 0 && v <= max) || v != floor(v))
		return false;
	*out = v;
	return true;
}

/* ---- route ---- */

/* Reads the hosts array at -1 into out. */
static int
policy_queue_check_hosts(lua_State *L, struct policy_route_out *out,
    char *problem, size_t size)
{
	bool seen[POLICY_ROUTE_HOSTS_MAX] = { false };
	size_t count = 0;

	if (lua_type(L, -1) != LUA_TTABLE) {
		snprintf(problem, size, "hosts is a %s; expected an array of "
		    "host names or IP addresses", luaL_typename(L, -1));
		return -1;
	}
	lua_pushnil(L);
	while (lua_next(L, -2) != 0) {
		double key = lua_type(L, -2) == LUA_TNUMBER ?
		    lua_tonumber(L, -2) : 0;
		size_t len, i;
		const char *host;

		if (key < 1 || key > POLICY_ROUTE_HOSTS_MAX || key != floor(key)) {
			lua_pop(L, 2);
			snprintf(problem, size, "hosts must be an array of 1 to %d "
			    "entries", POLICY_ROUTE_HOSTS_MAX);
			return -1;
		}
		i = (size_t)key - 1;
		host = lua_type(L, -1) == LUA_TSTRING ?
		    lua_tolstring(L, -1, &len) : NULL;
		if (host == NULL || !(policy_queue_host_ok(host, len) ||
		    policy_queue_ip_ok(host, len))) {
			snprintf(problem, size, "hosts[%zu] is not a host name or "
			    "an IP address", i + 1);
			lua_pop(L, 2);
			return -1;
		}
		memcpy(out->hosts[i], host, len + 1);
		seen[i] = true;
		count++;
		lua_pop(L, 1);
	}
	for (size_t i = 0; i < count; i++) {
		if (!seen[i]) {
			snprintf(problem, size, "hosts must be an array without "
			    "holes");
			return -1;
		}
	}
	if (count == 0) {
		snprintf(problem, size, "hosts must list 1 to %d hosts",
		    POLICY_ROUTE_HOSTS_MAX);
		return -1;
	}
	out->host_count = count;
	return 0;
}

/* Reads the value at -1 of route's field key into out. */
static int
policy_queue_route_field(lua_State *L, const char *key,
    const struct policy_declarations *decls, struct policy_route_out *out,
    char *problem, size_t size)
{
	size_t len = 0;
	const char *s = lua_type(L, -1) == LUA_TSTRING ?
	    lua_tolstring(L, -1, &len) : NULL;
	double port;

	if (strcmp(key, "site") == 0) {
		if (s == NULL || !policy_queue_site_ok(s, len)) {
			snprintf(problem, size, "site must be 1 to %d printable "
			    "characters without spaces or '/'", POLICY_SITE_MAX);
			return -1;
		}
		memcpy(out->site, s, len + 1);
	} else if (strcmp(key, "pool") == 0) {
		if (s == NULL || !policy_queue_name_ok(s, len) ||
		    !policy_declarations_has_pool(decls, s)) {
			snprintf(problem, size, "pool must name a declared pool "
			    "or \"default\"%s%.64s%s", s != NULL ? " (got \"" : "",
			    s != NULL ? s : "", s != NULL ? "\")" : "");
			return -1;
		}
		memcpy(out->pool, s, len + 1);
	} else if (strcmp(key, "route") == 0) {
		if (s == NULL || !policy_queue_name_ok(s, len)) {
			snprintf(problem, size, "route must be 1 to %d letters, "
			    "digits, '_', '-' or '.'", POLICY_QUEUE_NAME_MAX);
			return -1;
		}
		memcpy(out->route, s, len + 1);
	} else if (strcmp(key, "port") == 0) {
		if (!policy_queue_number(L, 65535, &port) || port < 1) {
			snprintf(problem, size, "port must be a whole number from 1 "
			    "to 65535");
			return -1;
		}
		out->port = (int)port;
	} else if (strcmp(key, "hosts") == 0) {
		return policy_queue_check_hosts(L, out, problem, size);
	} else {
		snprintf(problem, size, "unknown field \"%.64s\"", key);
		return -1;
	}
	return 0;
}

/* Reads one field (its value at -1) of a returned table into ctx. */
typedef int (*policy_queue_field_fn)(lua_State *L, const char *key,
    void *ctx, char *problem, size_t size);

/*
 * Checks the value at idx: nil (returns 0), or a table whose every field
 * field() accepts (returns 1). Returns -1 with a message in problem for
 * anything else, leaving the stack as it was.
 */
static int
policy_queue_walk(lua_State *L, int idx, policy_queue_field_fn field,
    void *ctx, char *problem, size_t size)
{
	idx = idx < 0 ? lua_gettop(L) + idx + 1 : idx;
	if (lua_isnoneornil(L, idx))
		return 0;
	if (lua_type(L, idx) != LUA_TTABLE) {
		snprintf(problem, size, "returned a %s; expected a table or nil",
		    luaL_typename(L, idx));
		return -1;
	}
	lua_pushnil(L);
	while (lua_next(L, idx) != 0) {
		size_t len;
		const char *key = policy_queue_key(L, &len);

		if (key == NULL || strlen(key) != len) {
			lua_pop(L, 2);
			snprintf(problem, size, "the table has a key that is not a "
			    "field name");
			return -1;
		}
		if (field(L, key, ctx, problem, size) < 0) {
			lua_pop(L, 2);
			return -1;
		}
		lua_pop(L, 1);
	}
	return 1;
}

struct route_fields {
	const struct policy_declarations *decls;
	struct policy_route_out *out;
};

static int
policy_queue_route_fields(lua_State *L, const char *key, void *ctx,
    char *problem, size_t size)
{
	struct route_fields *f = ctx;

	return policy_queue_route_field(L, key, f->decls, f->out, problem,
	    size);
}

static int policy_queue_shaping_field(lua_State *L, const char *key,
    struct policy_shaping *out, char *problem, size_t size);

static int
policy_queue_shaping_fields(lua_State *L, const char *key, void *ctx,
    char *problem, size_t size)
{
	return policy_queue_shaping_field(L, key, ctx, problem, size);
}

int
policy_queue_check_route(lua_State *L, int idx,
    const struct policy_declarations *decls, struct policy_route_out *out,
    char *problem, size_t size)
{
	struct route_fields fields = { decls, out };

	return policy_queue_walk(L, idx, policy_queue_route_fields, &fields,
	    problem, size);
}

/* ---- select_source ---- */

int
policy_queue_check_source(lua_State *L, int idx,
    const struct policy_path_in *in, size_t *index, char *problem,
    size_t size)
{
	const char *s;
	size_t len;

	if (lua_isnoneornil(L, idx))
		return 0;
	if (lua_type(L, idx) != LUA_TSTRING) {
		snprintf(problem, size, "returned a %s; expected a source name, "
		    "an IP address or nil", luaL_typename(L, idx));
		return -1;
	}
	s = lua_tolstring(L, idx, &len);
	for (size_t i = 0; i < in->source_count; i++) {
		const struct policy_source_choice *c = &in->sources[i];

		if ((c->name != NULL && c->name[0] != '\0' &&
		    strlen(c->name) == len && memcmp(c->name, s, len) == 0) ||
		    (c->ip != NULL && strlen(c->ip) == len &&
		    memcmp(c->ip, s, len) == 0)) {
			*index = i;
			return 1;
		}
	}
	snprintf(problem, size, "returned \"%.64s\", which is not a source "
	    "of pool \"%.64s\"", s, in->pool != NULL ? in->pool : "");
	return -1;
}

/* ---- shaping ---- */

/* Reads the value at -1 of shaping's field key into out. */
static int
policy_queue_shaping_field(lua_State *L, const char *key,
    struct policy_shaping *out, char *problem, size_t size)
{
	static const struct {
		const char *name;
		double max;
	} counts[] = {
		{ "max_connections", POLICY_SHAPING_CONNECTIONS_MAX },
		{ "burst", POLICY_THROTTLE_BURST_MAX },
		{ "max_messages_per_connection", POLICY_SHAPING_MESSAGES_MAX },
		{ "max_recipients_per_message", POLICY_SHAPING_RECIPIENTS_MAX },
		{ "daily_cap", POLICY_SHAPING_DAILY_CAP_MAX },
	};
	struct policy_rate rate;
	double v;

	if (strcmp(key, "reroute_when_suspended") == 0) {
		if (lua_type(L, -1) != LUA_TBOOLEAN) {
			snprintf(problem, size, "reroute_when_suspended must be true "
			    "or false");
			return -1;
		}
		out->reroute_when_suspended = lua_toboolean(L, -1) != 0;
		return 0;
	}
	if (strcmp(key, "max_message_rate") == 0) {
		if (lua_type(L, -1) != LUA_TSTRING ||
		    policy_rate_parse(lua_tostring(L, -1), &rate) < 0) {
			snprintf(problem, size, "max_message_rate must be a rate "
			    "such as \"15/s\", \"600/m\", \"10000/h\" or \"5000/d\" "
			    "(at most 1000000000 per unit)");
			return -1;
		}
		out->rate_per_second = rate.per_second;
		return 0;
	}
	for (size_t i = 0; i < ARRAY_SIZE(counts); i++) {
		if (strcmp(key, counts[i].name) != 0)
			continue;
		if (!policy_queue_number(L, counts[i].max, &v)) {
			snprintf(problem, size, "%s must be a whole number from 0 "
			    "to %.0f", key, counts[i].max);
			return -1;
		}
		if (i == 0)
			out->max_connections = (unsigned)v;
		else if (i == 1)
			out->burst = (unsigned)v;
		else if (i == 2)
			out->max_messages_per_connection = (unsigned)v;
		else if (i == 3)
			out->max_recipients_per_message = (unsigned)v;
		else
			out->daily_cap = (uint64_t)v;
		return 0;
	}
	snprintf(problem, size, "unknown field \"%.64s\"", key);
	return -1;
}

int
policy_queue_check_shaping(lua_State *L, int idx,
    struct policy_shaping *out, char *problem, size_t size)
{
	return policy_queue_walk(L, idx, policy_queue_shaping_fields, out,
	    problem, size);
}

/* ---- building the arguments ---- */

static void
policy_queue_set_string(lua_State *L, const char *field, const char *value)
{
	lua_pushstring(L, value != NULL ? value : "");
	lua_setfield(L, -2, field);
}

static void
policy_queue_set_number(lua_State *L, const char *field, double value)
{
	lua_pushnumber(L, value);
	lua_setfield(L, -2, field);
}

static int
policy_queue_read_only_error(lua_State *L)
{
	return luaL_error(L, "%s is read-only", lua_tostring(L,
	    lua_upvalueindex(1)));
}

/* Replaces the table on top with a read-only view of it called name:
 * reading a field reads the table, and assigning one raises. */
static void
policy_queue_make_read_only(lua_State *L, const char *name)
{
	lua_newtable(L);
	lua_createtable(L, 0, 3);
	lua_pushvalue(L, -3);
	lua_setfield(L, -2, "__index");
	lua_pushstring(L, name);
	lua_pushcclosure(L, policy_queue_read_only_error, 1);
	lua_setfield(L, -2, "__newindex");
	lua_pushstring(L, name);
	lua_setfield(L, -2, "__metatable");
	lua_setmetatable(L, -2);
	lua_remove(L, -2);
}

/* Raises problem as the failure of the running handler. */
static void
policy_queue_raise(lua_State *L, const char *problem)
{
	luaL_error(L, "invalid return value: %s", problem);
}

/* ---- route(msg, domain, mx) ---- */

struct policy_route_call {
	const struct policy_route_in *in;
	const struct policy_declarations *decls;
	struct policy_route_out out;	/* a copy until the result is valid */
	int checked;			/* policy_queue_check_route()'s result */
};

static int
policy_route_push(lua_State *L, void *arg)
{
	const struct policy_route_in *in = ((struct policy_route_call *)arg)->in;

	lua_createtable(L, 0, 5);
	policy_queue_set_string(L, "id", in->msgid);
	policy_queue_set_string(L, "sender", in->sender);
	policy_queue_set_string(L, "class", in->class_name);
	policy_queue_set_string(L, "tenant", in->tenant);
	policy_queue_set_string(L, "campaign", in->campaign);
	policy_queue_make_read_only(L, "sluice message");

	lua_pushstring(L, in->domain != NULL ? in->domain : "");

	lua_createtable(L, in->mx_count > INT32_MAX ? 0 : (int)in->mx_count, 0);
	for (size_t i = 0; i < in->mx_count && i < INT32_MAX; i++) {
		lua_createtable(L, 0, 2);
		policy_queue_set_string(L, "name", in->mx[i].name);
		policy_queue_set_number(L, "preference", in->mx[i].preference);
		lua_rawseti(L, -2, (int)(i + 1));
	}
	return 3;
}

static void
policy_route_collect(lua_State *L, int nresults, void *arg)
{
	struct policy_route_call *call = arg;
	char problem[POLICY_PROBLEM_SIZE];

	if (nresults == 0)
		return;
	call->checked = policy_queue_check_route(L, 1, call->decls, &call->out,
	    problem, sizeof(problem));
	if (call->checked < 0)
		policy_queue_raise(L, problem);
}

enum policy_queue_result
policy_route(struct policy_state *ps, const struct policy_route_in *in,
    struct policy_route_out *out)
{
	struct policy_route_call call = { .in = in,
	    .decls = policy_declarations_of(ps), .out = *out };
	int rc = policy_call(ps, POLICY_EVENT_ROUTE, in->msgid,
	    policy_route_push, &call, policy_route_collect, &call);

	if (rc < 0)
		return POLICY_QUEUE_FAILED;
	if (rc == 0 || call.checked == 0)
		return POLICY_QUEUE_DEFAULT;
	*out = call.out;
	return POLICY_QUEUE_OK;
}

/* ---- select_source(path) ---- */

struct policy_source_call {
	const struct policy_path_in *in;
	size_t index;
	int checked;			/* the check's result */
};

static int
policy_source_push(lua_State *L, void *arg)
{
	const struct policy_path_in *in = ((struct policy_source_call *)arg)->in;

	lua_createtable(L, 0, 6);
	policy_queue_set_string(L, "site", in->site);
	policy_queue_set_string(L, "pool", in->pool);
	policy_queue_set_string(L, "class", in->class_name);
	policy_queue_set_string(L, "domain", in->domain);
	policy_queue_set_string(L, "msg_id", in->msgid);
	lua_createtable(L, in->source_count > INT32_MAX ? 0 :
	    (int)in->source_count, 0);
	for (size_t i = 0; i < in->source_count && i < INT32_MAX; i++) {
		const struct policy_source_choice *c = &in->sources[i];

		lua_createtable(L, 0, 7);
		policy_queue_set_string(L, "name", c->name);
		policy_queue_set_string(L, "ip", c->ip);
		policy_queue_set_number(L, "score", c->score);
		lua_pushboolean(L, c->suspended);
		lua_setfield(L, -2, "suspended");
		lua_pushboolean(L, c->over_cap);
		lua_setfield(L, -2, "over_cap");
		policy_queue_set_number(L, "warmup_day", c->warmup_day);
		policy_queue_set_number(L, "sent_today", (double)c->sent_today);
		lua_rawseti(L, -2, (int)(i + 1));
	}
	lua_setfield(L, -2, "sources");
	return 1;
}

static void
policy_source_collect(lua_State *L, int nresults, void *arg)
{
	struct policy_source_call *call = arg;
	char problem[POLICY_PROBLEM_SIZE];

	if (nresults == 0)
		return;
	call->checked = policy_queue_check_source(L, 1, call->in, &call->index,
	    problem, sizeof(problem));
	if (call->checked < 0)
		policy_queue_raise(L, problem);
}

enum policy_queue_result
policy_select_source(struct policy_state *ps,
    const struct policy_path_in *in, size_t *index)
{
	struct policy_source_call call = { .in = in };
	int rc = policy_call(ps, POLICY_EVENT_SELECT_SOURCE, in->msgid,
	    policy_source_push, &call, policy_source_collect, &call);

	if (rc < 0)
		return POLICY_QUEUE_FAILED;
	if (rc == 0 || call.checked == 0)
		return POLICY_QUEUE_DEFAULT;
	*index = call.index;
	return POLICY_QUEUE_OK;
}

/* ---- shaping(path) ---- */

struct policy_shaping_call {
	const struct policy_shaping_in *in;
	struct policy_shaping out;	/* a copy until the result is valid */
	int checked;			/* the check's result */
};

static int
policy_shaping_push(lua_State *L, void *arg)
{
	const struct policy_shaping_in *in =
	    ((struct policy_shaping_call *)arg)->in;

	lua_createtable(L, 0, 4);
	policy_queue_set_string(L, "source", in->source_name);
	policy_queue_set_string(L, "ip", in->source_ip);
	policy_queue_set_string(L, "site", in->site);
	policy_queue_set_string(L, "pool", in->pool);
	return 1;
}

static void
policy_shaping_collect(lua_State *L, int nresults, void *arg)
{
	struct policy_shaping_call *call = arg;
	char problem[POLICY_PROBLEM_SIZE];

	if (nresults == 0)
		return;
	call->checked = policy_queue_check_shaping(L, 1, &call->out, problem,
	    sizeof(problem));
	if (call->checked < 0)
		policy_queue_raise(L, problem);
}

enum policy_queue_result
policy_shaping(struct policy_state *ps, const struct policy_shaping_in *in,
    struct policy_shaping *out)
{
	struct policy_shaping_call call = { .in = in, .out = *out };
	int rc = policy_call(ps, POLICY_EVENT_SHAPING, NULL,
	    policy_shaping_push, &call, policy_shaping_collect, &call);

	if (rc < 0)
		return POLICY_QUEUE_FAILED;
	if (rc == 0 || call.checked == 0)
		return POLICY_QUEUE_DEFAULT;
	*out = call.out;
	return POLICY_QUEUE_OK;
}

/* ---- delivery_result(res) ---- */

static int
policy_result_push(lua_State *L, void *arg)
{
	const struct policy_delivery_result *res = arg;
	const char *source = res->source_name != NULL &&
	    res->source_name[0] != '\0' ? res->source_name : res->source_ip;

	lua_createtable(L, 0, 18);
	policy_queue_set_string(L, "msg_id", res->msgid);
	policy_queue_set_string(L, "outcome", res->outcome);
	policy_queue_set_string(L, "source", res->source_name);
	policy_queue_set_string(L, "source_ip", res->source_ip);
	policy_queue_set_string(L, "site", res->site);
	policy_queue_set_string(L, "pool", res->pool);
	policy_queue_set_string(L, "domain", res->domain);
	policy_queue_set_string(L, "host", res->host);
	policy_queue_set_string(L, "host_ip", res->host_ip);
	policy_queue_set_number(L, "code", res->code);
	policy_queue_set_string(L, "enhanced_code", res->enhanced_code);
	policy_queue_set_string(L, "reply", res->reply);
	policy_queue_set_string(L, "class", res->class_name);
	policy_queue_set_string(L, "tenant", res->tenant);
	policy_queue_set_string(L, "campaign", res->campaign);
	policy_queue_set_number(L, "queue_time", res->queue_time);
	policy_queue_set_number(L, "recipients", res->recipients);
	if (source != NULL && source[0] != '\0' && res->site != NULL &&
	    res->site[0] != '\0') {
		lua_pushfstring(L, "%s/%s", source, res->site);
		lua_setfield(L, -2, "path");
	}
	policy_queue_make_read_only(L, "sluice delivery result");
	return 1;
}

void
policy_delivery_result(struct policy_state *ps,
    const struct policy_delivery_result *res)
{
	/* policy_call() logs a failure, and the return value is ignored. */
	(void)policy_call(ps, POLICY_EVENT_DELIVERY_RESULT, res->msgid,
	    policy_result_push, (void *)res, NULL, NULL);
}

/* ---- sluice.suspend(path_or_source, seconds, reason) ---- */

void
policy_set_suspend_fn(policy_suspend_fn fn, void *arg)
{
	policy_suspend.fn = fn;
	policy_suspend.arg = arg;
}

/* Splits target, "source" or "source/site", into source and site (""
 * when there is none); raises when either part is invalid. */
static void
policy_suspend_target(lua_State *L, char *source, size_t source_size,
    char *site, size_t site_size)
{
	size_t len, source_len, site_len = 0;
	const char *target = luaL_checklstring(L, 1, &len);
	const char *slash = memchr(target, '/', len);

	source_len = slash != NULL ? (size_t)(slash - target) : len;
	if (source_len >= source_size ||
	    !(policy_queue_name_ok(target, source_len) ||
	    policy_queue_ip_ok(target, source_len)))
		luaL_argerror(L, 1, "expected \"source\" or \"source/site\" "
		    "with a source name or IP address");
	memcpy(source, target, source_len);
	source[source_len] = '\0';
	site[0] = '\0';
	if (slash == NULL)
		return;
	site_len = len - source_len - 1;
	if (site_len >= site_size || !policy_queue_site_ok(slash + 1, site_len))
		luaL_argerror(L, 1, "the site after '/' must be 1 to 255 "
		    "printable characters without spaces or '/'");
	memcpy(site, slash + 1, site_len);
	site[site_len] = '\0';
}

static int
policy_lib_suspend(lua_State *L)
{
	struct policy_state *ps = policy_state_of(L);
	char source[POLICY_QUEUE_NAME_MAX + 1];
	char site[POLICY_SITE_MAX + 1];
	char error[256] = "";
	lua_Number seconds;
	const char *reason = "";
	size_t reason_len = 0;

	if (ps->phase != POLICY_PHASE_HANDLER)
		return luaL_error(L, "sluice.suspend() is only allowed in a "
		    "handler");
	policy_suspend_target(L, source, sizeof(source), site, sizeof(site));
	seconds = luaL_checknumber(L, 2);
	if (!(seconds >= 1 && seconds <= POLICY_SUSPEND_SECONDS_MAX) ||
	    seconds != floor(seconds))
		return luaL_argerror(L, 2, "expected whole seconds from 1 to "
		    "2592000 (30 days)");
	if (!lua_isnoneornil(L, 3))
		reason = luaL_checklstring(L, 3, &reason_len);
	if (reason_len > POLICY_SUSPEND_REASON_MAX)
		return luaL_argerror(L, 3, "a reason has at most 256 bytes");
	for (size_t i = 0; i < reason_len; i++)
		if ((unsigned char)reason[i] < 32 || reason[i] == 127)
			return luaL_argerror(L, 3, "a reason may not contain "
			    "control characters");
	if (policy_suspend.fn == NULL)
		return luaL_error(L, "sluice.suspend(): no scheduler is running");
	if (policy_suspend.fn(policy_suspend.arg, source, site,
	    (uint32_t)seconds, reason, error, sizeof(error)) < 0) {
		error[sizeof(error) - 1] = '\0';
		return luaL_error(L, "sluice.suspend(\"%s%s%s\"): %s", source,
		    site[0] != '\0' ? "/" : "", site, error[0] != '\0' ? error :
		    "failed");
	}
	return 0;
}

void
policy_queue_open(lua_State *L)
{
	lua_pushcfunction(L, policy_lib_suspend);
	lua_setfield(L, -2, "suspend");
}

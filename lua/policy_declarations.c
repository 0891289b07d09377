/*
 * policy_declarations.c - what a policy declares for the scheduler
 * while its top level runs: egress sources (sluice.source{}), pools of
 * sources (sluice.pool{}) and queue classes (sluice.class{}).
 *
 * Each function takes one table and checks every field. It raises on
 * anything invalid, on an unknown field and on a second declaration of
 * the same name, so a mistake stops the load (or the reload, which then
 * keeps the old policy) instead of surfacing in the queue later. A pool
 * names sources declared before it, and a class names a pool declared
 * before it. They work only while the policy loads.
 *
 * The declarations live in C, outside the Lua state's memory, and stay
 * fixed once the load has finished; policy_declarations_get() copies
 * them for the scheduler.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "policy_private.h"
#include "retry.h"
#include "util.h"

#define POLICY_CLASS_HEADER_NAME_MAX	128
#define POLICY_CLASS_HEADER_VALUE_MAX	1024

/* The classes every policy has unless it redefines them by name. */
static const struct {
	const char *name;
	unsigned priority;
	bool strict;
} policy_default_classes[] = {
	{ "critical", 1000, true },
	{ "transactional", 100, false },
	{ "personal", 50, false },
	{ "newsletter", 10, false },
};

struct policy_declared {
	struct policy_declarations d;
	/* True for a class the policy declared, false for a default one
	 * that it may still redefine. */
	bool class_declared[POLICY_CLASSES_MAX];
};

/* Raises a message formatted by vsnprintf(), which, unlike
 * lua_pushfstring(), supports precisions such as "%.64s" that keep
 * long values out of the message. */
static int
policy_declaration_raise(lua_State *L, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
policy_declaration_raise(lua_State *L, const char *fmt, ...)
{
	char message[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	lua_pushstring(L, message);
	return lua_error(L);
}

/* ---- the declarations of a state ---- */

static void
policy_declarations_defaults(struct policy_declarations *d)
{
	memset(d, 0, sizeof(*d));
	for (size_t i = 0; i < ARRAY_SIZE(policy_default_classes); i++) {
		struct policy_class_decl *c = &d->classes[d->class_count++];

		snprintf(c->name, sizeof(c->name), "%s",
		    policy_default_classes[i].name);
		c->priority = policy_default_classes[i].priority;
		c->strict = policy_default_classes[i].strict;
	}
}

/* Returns the state's declarations, creating them with the default
 * classes on first use. */
static struct policy_declared *
policy_declared_of(lua_State *L)
{
	struct policy_state *ps = policy_state_of(L);

	if (ps->declared == NULL) {
		ps->declared = xcalloc(1, sizeof(*ps->declared));
		policy_declarations_defaults(&ps->declared->d);
	}
	return ps->declared;
}

void
policy_declarations_free(struct policy_state *ps)
{
	free(ps->declared);
	ps->declared = NULL;
}

const struct policy_declarations *
policy_declarations_of(const struct policy_state *ps)
{
	return ps != NULL && ps->declared != NULL ? &ps->declared->d : NULL;
}

static ssize_t
policy_find_source(const struct policy_declarations *d, const char *name)
{
	for (size_t i = 0; i < d->source_count; i++)
		if (strcmp(d->sources[i].name, name) == 0 ||
		    strcmp(d->sources[i].ip, name) == 0)
			return (ssize_t)i;
	return -1;
}

static ssize_t
policy_find_pool(const struct policy_declarations *d, const char *name)
{
	for (size_t i = 0; i < d->pool_count; i++)
		if (strcmp(d->pools[i].name, name) == 0)
			return (ssize_t)i;
	return -1;
}

bool
policy_declarations_has_pool(const struct policy_declarations *decls,
    const char *name)
{
	return strcmp(name, "default") == 0 ||
	    (decls != NULL && policy_find_pool(decls, name) >= 0);
}

void
policy_declarations_get(struct policy_state *ps,
    struct policy_declarations *out)
{
	const struct policy_declarations *d = policy_declarations_of(ps);
	struct policy_pool_decl *pool;

	if (d == NULL) {
		policy_declarations_defaults(out);
		return;
	}
	memcpy(out, d, sizeof(*out));

	/* Without a pool of its own called "default", the default pool is
	 * every declared source. sluice.pool{} keeps one slot free for it. */
	if (out->source_count == 0 || policy_find_pool(out, "default") >= 0)
		return;
	SLUICE_ASSERT(out->pool_count < POLICY_POOLS_MAX);
	pool = &out->pools[out->pool_count++];
	memset(pool, 0, sizeof(*pool));
	snprintf(pool->name, sizeof(pool->name), "default");
	for (size_t i = 0; i < out->source_count; i++)
		pool->sources[pool->source_count++] = i;
}

/* ---- reading a declaration's table ---- */

/* Checks that argument 1 is a table and that the state is loading. */
static void
policy_declaration_start(lua_State *L, const char *what)
{
	policy_state_check_phase(L, 1u << POLICY_PHASE_LOAD, what);
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_settop(L, 1);
}

/* Raises unless every key of the table at 1 is one of fields. */
static void
policy_declaration_check_fields(lua_State *L, const char *what,
    const char *const *fields)
{
	lua_pushnil(L);
	while (lua_next(L, 1) != 0) {
		const char *key = lua_type(L, -2) == LUA_TSTRING ?
		    lua_tostring(L, -2) : NULL;
		const char *const *f = fields;

		while (key != NULL && *f != NULL && strcmp(*f, key) != 0)
			f++;
		if (key == NULL || *f == NULL)
			policy_declaration_raise(L, "%s: unknown field "
			    "%s%.64s%s", what, key != NULL ? "\"" : "(a ",
			    key != NULL ? key : luaL_typename(L, -2),
			    key != NULL ? "\"" : " key)");
		lua_pop(L, 1);
	}
}

/* Pushes field of the table at 1 and returns its string, or NULL when
 * the field is absent and not required. Raises on a value that is not
 * a string. */
static const char *
policy_declaration_string(lua_State *L, const char *what, const char *field,
    bool required, size_t *len)
{
	lua_getfield(L, 1, field);
	if (lua_isnil(L, -1) && !required)
		return NULL;
	if (lua_type(L, -1) != LUA_TSTRING)
		policy_declaration_raise(L, "%s: %s must be a string%s", what,
		    field, lua_isnil(L, -1) ? " and is missing" : "");
	return lua_tolstring(L, -1, len);
}

/* Reads field as a name ([A-Za-z0-9_.-]{1,64}) into buf. Returns false
 * when the field is absent and not required. */
static bool
policy_declaration_name(lua_State *L, const char *what, const char *field,
    bool required, char *buf)
{
	size_t len;
	const char *s = policy_declaration_string(L, what, field, required,
	    &len);

	if (s == NULL) {
		lua_pop(L, 1);
		return false;
	}
	if (!policy_queue_name_ok(s, len))
		policy_declaration_raise(L, "%s: invalid %s \"%.64s\": use 1 "
		    "to %d letters, digits, '_', '-' or '.'", what, field, s,
		    POLICY_QUEUE_NAME_MAX);
	memcpy(buf, s, len + 1);
	lua_pop(L, 1);
	return true;
}

/* ---- sluice.source{ name=, ip=, ehlo= } ---- */

static int
policy_lib_source(lua_State *L)
{
	static const char *const fields[] = { "name", "ip", "ehlo", NULL };
	static const char what[] = "sluice.source";
	struct policy_declared *decl;
	struct policy_source_decl src;
	const char *s;
	size_t len;

	policy_declaration_start(L, "sluice.source()");
	policy_declaration_check_fields(L, what, fields);
	memset(&src, 0, sizeof(src));
	policy_declaration_name(L, what, "name", true, src.name);

	s = policy_declaration_string(L, what, "ip", true, &len);
	if (!policy_queue_ip_ok(s, len))
		return policy_declaration_raise(L, "%s: invalid ip \"%.64s\": "
		    "expected an IPv4 or IPv6 address", what, s);
	memcpy(src.ip, s, len + 1);
	lua_pop(L, 1);

	if ((s = policy_declaration_string(L, what, "ehlo", false,
	    &len)) != NULL) {
		if (!policy_queue_host_ok(s, len))
			return policy_declaration_raise(L, "%s: invalid ehlo "
			    "\"%.64s\": expected a host name", what, s);
		memcpy(src.ehlo, s, len + 1);
	}
	lua_pop(L, 1);

	decl = policy_declared_of(L);
	if (policy_find_source(&decl->d, src.name) >= 0 ||
	    policy_find_source(&decl->d, src.ip) >= 0)
		return policy_declaration_raise(L, "%s: a source named \"%s\" "
		    "or with ip %s is already declared", what, src.name,
		    src.ip);
	if (decl->d.source_count == POLICY_SOURCES_MAX)
		return policy_declaration_raise(L, "%s: more than %d sources",
		    what, POLICY_SOURCES_MAX);
	decl->d.sources[decl->d.source_count++] = src;
	return 0;
}

/* ---- sluice.pool{ name=, sources = { ... } } ---- */

/* Reads the array of source names at -1 into pool. */
static void
policy_pool_read_sources(lua_State *L, const struct policy_declarations *d,
    struct policy_pool_decl *pool)
{
	static const char what[] = "sluice.pool";
	size_t count = lua_objlen(L, -1);

	if (count == 0 || count > POLICY_SOURCES_MAX)
		policy_declaration_raise(L, "%s: sources must list 1 to %d "
		    "declared sources", what, POLICY_SOURCES_MAX);

	/* Every key must be an index of the array: a misplaced
	 * "name = ..." inside sources would otherwise go unnoticed. */
	lua_pushnil(L);
	while (lua_next(L, -2) != 0) {
		lua_Number key = lua_type(L, -2) == LUA_TNUMBER ?
		    lua_tonumber(L, -2) : 0;

		if (key < 1 || key > count || key != floor(key))
			policy_declaration_raise(L, "%s: sources must be an "
			    "array of source names", what);
		lua_pop(L, 1);
	}
	for (size_t i = 1; i <= count; i++) {
		const char *name;
		ssize_t index;

		lua_rawgeti(L, -1, (int)i);
		name = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) :
		    NULL;
		if (name == NULL)
			policy_declaration_raise(L, "%s: sources[%d] is not a "
			    "string", what, (int)i);
		if ((index = policy_find_source(d, name)) < 0)
			policy_declaration_raise(L, "%s: sources[%d] \"%.64s\" "
			    "is not a declared source (declare sources before "
			    "their pools)", what, (int)i, name);
		for (size_t j = 0; j < pool->source_count; j++)
			if (pool->sources[j] == (size_t)index)
				policy_declaration_raise(L, "%s: source "
				    "\"%.64s\" is listed twice", what, name);
		pool->sources[pool->source_count++] = (size_t)index;
		lua_pop(L, 1);
	}
}

static int
policy_lib_pool(lua_State *L)
{
	static const char *const fields[] = { "name", "sources", NULL };
	static const char what[] = "sluice.pool";
	struct policy_declared *decl;
	struct policy_pool_decl *pool;
	size_t limit;

	policy_declaration_start(L, "sluice.pool()");
	policy_declaration_check_fields(L, what, fields);
	decl = policy_declared_of(L);
	if (decl->d.pool_count == POLICY_POOLS_MAX)
		return policy_declaration_raise(L, "%s: more than %d pools",
		    what, POLICY_POOLS_MAX);

	/* The pool is read into the first free slot, which counts only
	 * once everything is valid. */
	pool = &decl->d.pools[decl->d.pool_count];
	memset(pool, 0, sizeof(*pool));
	policy_declaration_name(L, what, "name", true, pool->name);
	if (policy_find_pool(&decl->d, pool->name) >= 0)
		return policy_declaration_raise(L, "%s: pool \"%s\" is already "
		    "declared", what, pool->name);
	/* One slot stays free for the implicit "default" pool until the
	 * policy declares its own. */
	limit = policy_find_pool(&decl->d, "default") >= 0 ||
	    strcmp(pool->name, "default") == 0 ? POLICY_POOLS_MAX :
	    POLICY_POOLS_MAX - 1;
	if (decl->d.pool_count >= limit)
		return policy_declaration_raise(L, "%s: more than %zu pools "
		    "besides \"default\"", what, limit);

	lua_getfield(L, 1, "sources");
	if (lua_type(L, -1) != LUA_TTABLE)
		return policy_declaration_raise(L, "%s: sources must be an "
		    "array of source names", what);
	policy_pool_read_sources(L, &decl->d, pool);
	lua_pop(L, 1);
	decl->d.pool_count++;
	return 0;
}

/* ---- sluice.class{ name=, priority=, strict=, pool=, headers=,
 *      retry= } ---- */

static bool
policy_header_name_ok(const char *s, size_t len)
{
	if (len == 0 || len > POLICY_CLASS_HEADER_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (s[i] < 33 || s[i] > 126 || s[i] == ':')
			return false;
	return true;
}

static int
policy_header_compare(const void *a, const void *b)
{
	return strcmp(((const struct policy_class_header *)a)->name,
	    ((const struct policy_class_header *)b)->name);
}

/* Reads the headers table at -1 (name = value) into c, sorted by name
 * so that the order does not depend on the table. */
static void
policy_class_read_headers(lua_State *L, struct policy_class_decl *c)
{
	static const char what[] = "sluice.class";

	if (lua_type(L, -1) != LUA_TTABLE)
		policy_declaration_raise(L, "%s: headers must be a table of "
		    "name = value", what);
	lua_pushnil(L);
	while (lua_next(L, -2) != 0) {
		struct policy_class_header *h;
		size_t name_len, value_len;
		const char *name, *value;

		if (lua_type(L, -2) != LUA_TSTRING ||
		    lua_type(L, -1) != LUA_TSTRING)
			policy_declaration_raise(L, "%s: headers must map "
			    "header names to string values", what);
		name = lua_tolstring(L, -2, &name_len);
		value = lua_tolstring(L, -1, &value_len);
		if (!policy_header_name_ok(name, name_len))
			policy_declaration_raise(L, "%s: invalid header name "
			    "\"%.64s\": use 1 to %d printable characters "
			    "without ':'", what, name,
			    POLICY_CLASS_HEADER_NAME_MAX);
		if (value_len > POLICY_CLASS_HEADER_VALUE_MAX ||
		    strcspn(value, "\r\n") != value_len)
			policy_declaration_raise(L, "%s: the value of header "
			    "%s must have at most %d bytes and no CR, LF or "
			    "NUL", what, name, POLICY_CLASS_HEADER_VALUE_MAX);
		if (c->header_count == POLICY_CLASS_HEADERS_MAX)
			policy_declaration_raise(L, "%s: more than %d headers",
			    what, POLICY_CLASS_HEADERS_MAX);
		h = &c->headers[c->header_count++];
		memcpy(h->name, name, name_len + 1);
		memcpy(h->value, value, value_len + 1);
		lua_pop(L, 1);
	}
	qsort(c->headers, c->header_count, sizeof(c->headers[0]),
	    policy_header_compare);
}

/* Checks the retry text at -1 as the parameters of a retry rule
 * ("F,2h,15m; G,16h,1h,1.5") and copies it into c. */
static void
policy_class_read_retry(lua_State *L, struct policy_class_decl *c)
{
	static const char what[] = "sluice.class";
	struct retry_rule rule;
	char *line, *error = NULL;
	size_t len;
	const char *text;
	int rc;

	if (lua_type(L, -1) != LUA_TSTRING)
		policy_declaration_raise(L, "%s: retry must be a string such "
		    "as \"F,2h,15m; G,16h,1h,1.5\"", what);
	text = lua_tolstring(L, -1, &len);
	if (len == 0 || len > POLICY_RETRY_TEXT_MAX ||
	    strlen(text) != len || strncmp(text, "senders=", 8) == 0)
		policy_declaration_raise(L, "%s: retry must be 1 to %d bytes "
		    "of retry parameters", what, POLICY_RETRY_TEXT_MAX);
	line = xasprintf("* * %s", text);
	rc = retry_rule_parse(line, &rule, &error);
	free(line);
	if (rc == 0) {
		rc = rule.param_count > 0 ? 0 : -1;
		retry_rule_free(&rule);
	}
	if (rc < 0) {
		char message[512];

		snprintf(message, sizeof(message), "%s: invalid retry "
		    "\"%s\": %s", what, text, error != NULL ? error :
		    "no retry parameters");
		free(error);
		policy_declaration_raise(L, "%s", message);
	}
	memcpy(c->retry, text, len + 1);
}

/* Reads every field but the name into c. */
static void
policy_class_read(lua_State *L, const struct policy_declarations *d,
    struct policy_class_decl *c)
{
	static const char what[] = "sluice.class";
	lua_Number priority;

	lua_getfield(L, 1, "priority");
	priority = lua_tonumber(L, -1);
	if (lua_type(L, -1) != LUA_TNUMBER || !(priority >= 1 &&
	    priority <= POLICY_CLASS_PRIORITY_MAX) || priority != floor(priority))
		policy_declaration_raise(L, "%s: priority must be a whole "
		    "number from 1 to %d", what, POLICY_CLASS_PRIORITY_MAX);
	c->priority = (unsigned)priority;
	lua_pop(L, 1);

	lua_getfield(L, 1, "strict");
	if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TBOOLEAN)
		policy_declaration_raise(L, "%s: strict must be true or false",
		    what);
	c->strict = lua_toboolean(L, -1);
	lua_pop(L, 1);

	if (policy_declaration_name(L, what, "pool", false, c->pool)) {
		if (!policy_declarations_has_pool(d, c->pool))
			policy_declaration_raise(L, "%s: pool \"%s\" is not "
			    "declared (declare pools before their classes)",
			    what, c->pool);
		if (strcmp(c->pool, "default") == 0)
			c->pool[0] = '\0';
	}

	lua_getfield(L, 1, "headers");
	if (!lua_isnil(L, -1))
		policy_class_read_headers(L, c);
	lua_pop(L, 1);

	lua_getfield(L, 1, "retry");
	if (!lua_isnil(L, -1))
		policy_class_read_retry(L, c);
	lua_pop(L, 1);
}

static int
policy_lib_class(lua_State *L)
{
	static const char *const fields[] = { "name", "priority", "strict",
	    "pool", "headers", "retry", NULL };
	static const char what[] = "sluice.class";
	struct policy_declared *decl;
	struct policy_class_decl c;
	size_t slot;

	policy_declaration_start(L, "sluice.class()");
	policy_declaration_check_fields(L, what, fields);
	memset(&c, 0, sizeof(c));
	policy_declaration_name(L, what, "name", true, c.name);
	decl = policy_declared_of(L);
	for (slot = 0; slot < decl->d.class_count; slot++)
		if (strcmp(decl->d.classes[slot].name, c.name) == 0)
			break;
	if (slot < decl->d.class_count && decl->class_declared[slot])
		return policy_declaration_raise(L, "%s: class \"%s\" is "
		    "already declared", what, c.name);
	if (slot == POLICY_CLASSES_MAX)
		return policy_declaration_raise(L, "%s: more than %d classes, "
		    "the four default ones included", what, POLICY_CLASSES_MAX);

	/* A raise while reading leaves the declarations as they were (a
	 * policy may catch it with pcall). */
	policy_class_read(L, &decl->d, &c);
	decl->d.classes[slot] = c;
	decl->class_declared[slot] = true;
	if (slot == decl->d.class_count)
		decl->d.class_count++;
	return 0;
}

void
policy_declarations_open(lua_State *L)
{
	lua_pushcfunction(L, policy_lib_source);
	lua_setfield(L, -2, "source");
	lua_pushcfunction(L, policy_lib_pool);
	lua_setfield(L, -2, "pool");
	lua_pushcfunction(L, policy_lib_class);
	lua_setfield(L, -2, "class");
}

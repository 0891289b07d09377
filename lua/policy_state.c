/*
 * policy_state.c - one LuaJIT state: its allocator with the memory cap,
 * its creation and the run of the policy file's top level, and the
 * sluice library table (sluice.on, log, config, now, hostname,
 * version, the shared tables of policy_tables_lua.c, the declarations
 * of policy_declarations.c and sluice.suspend of policy_queue.c).
 *
 * Every call into Lua, the set-up included, runs in protected mode, so
 * a memory error never reaches LuaJIT's panic function. A panic is
 * therefore a bug in this module, and it aborts.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "clock.h"
#include "log.h"
#include "log_line.h"
#include "policy_private.h"
#include "policy_tables.h"
#include "util.h"

/* Header of every block the allocator hands to LuaJIT; 32 bytes, so
 * blocks keep malloc's 16-byte alignment. */
struct policy_block {
	struct policy_block *prev, *next;
	size_t size;			/* bytes LuaJIT asked for */
	size_t unused;
};

/* The top level of a policy may take longer than a handler: it may read
 * files and build tables. */
#define POLICY_LOAD_LIMIT_FACTOR	10
#define POLICY_LOAD_LIMIT_MIN_USEC	(1000 * 1000)

static const char *const policy_event_names[POLICY_EVENT_COUNT] = {
	[POLICY_EVENT_CONNECT] = "connect",
	[POLICY_EVENT_HELO] = "helo",
	[POLICY_EVENT_MAIL] = "mail",
	[POLICY_EVENT_RCPT] = "rcpt",
	[POLICY_EVENT_DATA] = "data",
	[POLICY_EVENT_MESSAGE] = "message",
	[POLICY_EVENT_TICK] = "tick",
	[POLICY_EVENT_RELOAD] = "reload",
	[POLICY_EVENT_ROUTE] = "route",
	[POLICY_EVENT_SELECT_SOURCE] = "select_source",
	[POLICY_EVENT_SHAPING] = "shaping",
	[POLICY_EVENT_DELIVERY_RESULT] = "delivery_result",
};

const char *
policy_event_name(enum policy_event event)
{
	return event < POLICY_EVENT_COUNT ? policy_event_names[event] :
	    "unknown";
}

int
policy_event_find(const char *name)
{
	for (int i = 0; i < POLICY_EVENT_COUNT; i++)
		if (strcmp(policy_event_names[i], name) == 0)
			return i;
	return -1;
}

/* ---- allocator ---- */

static void
policy_block_link(struct policy_state *ps, struct policy_block *b)
{
	b->next = ps->blocks->next;
	b->prev = ps->blocks;
	ps->blocks->next->prev = b;
	ps->blocks->next = b;
	ps->memory_used += b->size;
}

static void
policy_block_unlink(struct policy_state *ps, struct policy_block *b)
{
	b->prev->next = b->next;
	b->next->prev = b->prev;
	ps->memory_used -= b->size;
}

/*
 * LuaJIT's allocator (lua_Alloc). While policy code runs, a request
 * that would take the state over lua_memory_limit fails, and LuaJIT
 * raises "not enough memory" in the policy. The cap never refuses
 * a block that shrinks.
 */
static void *
policy_state_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	struct policy_state *ps = ud;
	struct policy_block *b = ptr != NULL ? (struct policy_block *)ptr - 1 :
	    NULL;
	struct policy_block *grown;
	size_t old = b != NULL ? b->size : 0;

	if (nsize == 0) {
		if (b != NULL) {
			policy_block_unlink(ps, b);
			free(b);
		}
		return NULL;
	}
	if (nsize > SIZE_MAX - sizeof(*b))
		return NULL;
	if (ps->memory_capped && nsize > old &&
	    ps->memory_used - old + nsize > ps->memory_limit)
		return NULL;

	if (b != NULL)
		policy_block_unlink(ps, b);
	if ((grown = realloc(b, sizeof(*b) + nsize)) == NULL) {
		if (b != NULL)
			policy_block_link(ps, b);
		return NULL;
	}
	grown->size = nsize;
	policy_block_link(ps, grown);
	return grown + 1;
}

struct policy_state *
policy_state_of(lua_State *L)
{
	void *ud;

	lua_getallocf(L, &ud);
	return ud;
}

/* ---- helpers for library functions ---- */

void
policy_state_check_phase(lua_State *L, unsigned mask, const char *what)
{
	struct policy_state *ps = policy_state_of(L);

	if ((mask & (1u << ps->phase)) == 0)
		luaL_error(L, "%s is only allowed while the policy loads", what);
}

/* Writes "script:line" of the first Lua function on the stack, from
 * level on, into buf; "" if there is none. */
static void
policy_state_where(lua_State *L, int level, char *buf, size_t size)
{
	lua_Debug ar;

	buf[0] = '\0';
	for (; lua_getstack(L, level, &ar); level++) {
		if (lua_getinfo(L, "Sl", &ar) && ar.currentline > 0) {
			snprintf(buf, size, "%s:%d", ar.short_src, ar.currentline);
			return;
		}
	}
}

/* The error handler of every call: notes where the error happened and
 * returns the message, turned into a string if need be. */
static int
policy_state_traceback(lua_State *L)
{
	struct policy_state *ps = policy_state_of(L);

	policy_state_where(L, 1, ps->error_where, sizeof(ps->error_where));
	if (lua_type(L, 1) != LUA_TSTRING)
		lua_pushfstring(L, "(error object is a %s value)",
		    luaL_typename(L, 1));
	return 1;
}

static int
policy_state_panic(lua_State *L)
{
	const char *message = lua_tostring(L, -1);

	fatal_bug("Lua error outside a protected call: %s",
	    message != NULL ? message : "(not a string)");
}

/* ---- the sluice table ---- */

/* sluice.on(event, fn): registers fn as the handler of event, while
 * the policy loads. A second handler replaces the first. */
static int
policy_lib_on(lua_State *L)
{
	struct policy_state *ps = policy_state_of(L);
	const char *name = luaL_checkstring(L, 1);
	struct policy_handler *h;
	char old_where[POLICY_WHERE_SIZE];
	lua_Debug ar;
	int event;

	policy_state_check_phase(L, 1u << POLICY_PHASE_LOAD, "sluice.on()");
	luaL_checktype(L, 2, LUA_TFUNCTION);
	if ((event = policy_event_find(name)) < 0)
		return luaL_argerror(L, 1, lua_pushfstring(L, "unknown event "
		    "\"%s\"", name));
	h = &ps->handlers[event];

	snprintf(old_where, sizeof(old_where), "%s", h->where);
	lua_pushvalue(L, 2);
	if (!lua_getinfo(L, ">S", &ar))
		snprintf(h->where, sizeof(h->where), "?");
	else
		snprintf(h->where, sizeof(h->where), "%s:%d", ar.short_src,
		    ar.linedefined);
	if (h->ref != LUA_NOREF) {
		char where[POLICY_WHERE_SIZE];

		policy_state_where(L, 1, where, sizeof(where));
		log_write(LOG_MAIN, NULL, "policy warning: a second handler for "
		    "%s at %s replaces the one at %s", name, where, old_where);
		luaL_unref(L, LUA_REGISTRYINDEX, h->ref);
	}
	lua_pushvalue(L, 2);
	h->ref = luaL_ref(L, LUA_REGISTRYINDEX);
	return 0;
}

/* sluice.log(level, text): "debug" (dropped), "info" and "warn" to
 * mainlog, "error" to mainlog and paniclog. */
static int
policy_lib_log(lua_State *L)
{
	static const char *const levels[] = {
		"debug", "info", "warn", "error", NULL
	};
	struct policy_state *ps = policy_state_of(L);
	int level = luaL_checkoption(L, 1, NULL, levels);
	size_t len;
	const char *text = luaL_checklstring(L, 2, &len);
	char escaped[POLICY_LOG_TEXT_MAX * 4 + 16];
	char where[POLICY_WHERE_SIZE];

	if (level == 0)
		return 0;
	policy_state_where(L, 1, where, sizeof(where));
	log_line_escape(escaped, sizeof(escaped), text, POLICY_LOG_TEXT_MAX,
	    LOG_ESCAPE_TEXT);
	log_write(level == 3 ? LOG_MAIN | LOG_PANIC : LOG_MAIN, ps->msgid,
	    "policy %s at %s: %s", levels[level], where, escaped);
	return 0;
}

/* sluice.config(name): the option's value as "sluice -bP name" prints
 * it, or nil for an unknown option. */
static int
policy_lib_config(lua_State *L)
{
	struct policy_state *ps = policy_state_of(L);
	size_t len;
	const char *name = luaL_checklstring(L, 1, &len);
	char value[CONFIG_LINE_MAX + 2];
	FILE *f;
	int rc;

	if (len == 0 || len > 64 || strspn(name, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+") != len) {
		lua_pushnil(L);
		return 1;
	}
	/* config_print() writes to a FILE. A fixed buffer is large enough,
	 * since an option's line is at most CONFIG_LINE_MAX. */
	if ((f = fmemopen(value, sizeof(value), "w")) == NULL)
		return luaL_error(L, "sluice.config: %s", strerror(errno));
	rc = config_print(f, ps->config, name, true);
	len = (size_t)ftell(f);
	fclose(f);
	if (rc < 0) {
		lua_pushnil(L);
		return 1;
	}
	if (len >= sizeof(value))
		len = sizeof(value) - 1;
	while (len > 0 && value[len - 1] == '\n')
		len--;
	lua_pushlstring(L, value, len);
	return 1;
}

/* sluice.now(): seconds since the epoch, with microseconds, from the
 * daemon's clock (the fake clock in tests). */
static int
policy_lib_now(lua_State *L)
{
	struct timeval tv;

	clock_now_tv(&tv);
	lua_pushnumber(L, (lua_Number)tv.tv_sec + (lua_Number)tv.tv_usec / 1e6);
	return 1;
}

/* Builds the sluice table and leaves it on the stack. */
static void
policy_state_open_library(lua_State *L, struct policy_state *ps)
{
	static const luaL_Reg functions[] = {
		{ "on", policy_lib_on },
		{ "log", policy_lib_log },
		{ "config", policy_lib_config },
		{ "now", policy_lib_now },
		{ NULL, NULL },
	};

	lua_createtable(L, 0, 13);
	for (const luaL_Reg *f = functions; f->name != NULL; f++) {
		lua_pushcfunction(L, f->func);
		lua_setfield(L, -2, f->name);
	}
	lua_pushstring(L, ps->config->primary_hostname);
	lua_setfield(L, -2, "hostname");
	lua_pushstring(L, PACKAGE_VERSION);
	lua_setfield(L, -2, "version");
	policy_tables_open(L);
	policy_declarations_open(L);
	policy_queue_open(L);
}

/* ---- creating and loading ---- */

/* Runs in protected mode: the libraries, the sandbox and the objects. */
static int
policy_state_setup(lua_State *L)
{
	struct policy_state *ps = lua_touserdata(L, 1);

	luaL_openlibs(L);

	/* jit.util is a module of its own, preloaded by the jit library. */
	lua_getglobal(L, "require");
	lua_pushliteral(L, "jit.util");
	lua_call(L, 1, 1);
	ps->jit_util_ref = luaL_ref(L, LUA_REGISTRYINDEX);

	lua_pushcfunction(L, policy_state_traceback);
	ps->traceback_ref = luaL_ref(L, LUA_REGISTRYINDEX);

	policy_objects_open(L);
	policy_state_open_library(L, ps);
	lua_setfield(L, LUA_REGISTRYINDEX, "sluice.library");
	policy_sandbox_open(L, ps);
	return 0;
}

/*
 * The folders require() searches: lua_path, or by default the policy
 * file's folder and then the folder of the scripts that ship with
 * sluice. Returns a new string of folders separated by NUL bytes, with
 * an empty one at the end.
 */
static char *
policy_state_search_path(const struct config *config, const char *file)
{
	struct config_list_iter iter;
	char item[CONFIG_LIST_ITEM_MAX + 1];
	const char *slash = strrchr(file, '/');
	char *path;
	size_t len = 0, size;

	if (config->lua_path == NULL || config->lua_path[0] == '\0') {
		path = xasprintf("%.*s%c%s%c", slash != NULL ?
		    (int)(slash - file) : 1, slash != NULL ? file : ".", '\0',
		    SLUICE_SCRIPTDIR, '\0');
		return path;
	}
	size = strlen(config->lua_path) + 2;
	path = xmalloc(size);
	config_list_init(&iter, config->lua_path);
	while (config_list_next(&iter, item, sizeof(item)) != NULL) {
		size_t n = strlen(item) + 1;

		memcpy(path + len, item, n);
		len += n;
	}
	path[len] = '\0';
	return path;
}

/* The policy file: lua_policy, relative to the configuration file's
 * folder unless it is absolute. Returns a new string. */
static char *
policy_state_file(const struct config *config)
{
	const char *file = config->lua_policy;
	const char *slash = strrchr(config->config_file, '/');

	if (file[0] == '/' || slash == NULL)
		return xstrdup(file);
	return xasprintf("%.*s/%s", (int)(slash - config->config_file),
	    config->config_file, file);
}

/* Takes the error message from the top of the stack. Returns a new
 * string. */
static char *
policy_state_error(struct policy_state *ps, const char *prefix)
{
	const char *message = lua_tostring(ps->L, -1);

	return xasprintf("%s%s", prefix, message != NULL ? message :
	    "(error object is not a string)");
}

struct policy_state *
policy_state_load(const struct config *config, uint64_t serial,
    char **error)
{
	struct policy_state *ps = xcalloc(1, sizeof(*ps));
	uint64_t limit_usec;
	char *chunk_name = NULL;
	int rc;

	ps->config = config;
	ps->refs = 1;
	ps->serial = serial;
	ps->generation = 1;
	ps->memory_limit = config->lua_memory_limit > 0 ?
	    (size_t)config->lua_memory_limit : SIZE_MAX;
	ps->blocks = xcalloc(1, sizeof(*ps->blocks));
	ps->blocks->next = ps->blocks->prev = ps->blocks;
	ps->traceback_ref = ps->env_ref = ps->jit_util_ref = LUA_NOREF;
	for (int i = 0; i < POLICY_EVENT_COUNT; i++)
		ps->handlers[i].ref = LUA_NOREF;
	ps->policy_file = policy_state_file(config);
	ps->search_path = policy_state_search_path(config, ps->policy_file);

	if ((ps->L = lua_newstate(policy_state_alloc, ps)) == NULL) {
		*error = xstrdup("cannot create a Lua state: out of memory");
		goto fail;
	}
	lua_atpanic(ps->L, policy_state_panic);
	if (lua_cpcall(ps->L, policy_state_setup, ps) != 0) {
		*error = policy_state_error(ps, "cannot set up the Lua state: ");
		goto fail;
	}

	/* Lua error messages start with the chunk name, so "@FILE" makes
	 * them read "FILE:LINE: ...". */
	chunk_name = xasprintf("@%s", ps->policy_file);
	if (!lua_checkstack(ps->L, POLICY_STACK_SLOTS) ||
	    policy_sandbox_load_file(ps->L, ps, ps->policy_file,
	    chunk_name) < 0) {
		*error = policy_state_error(ps, "");
		goto fail;
	}

	limit_usec = (uint64_t)config->lua_time_limit * 1000 *
	    POLICY_LOAD_LIMIT_FACTOR;
	if (limit_usec < POLICY_LOAD_LIMIT_MIN_USEC)
		limit_usec = POLICY_LOAD_LIMIT_MIN_USEC;
	ps->phase = POLICY_PHASE_LOAD;
	ps->memory_capped = true;
	rc = policy_budget_call(ps, 0, 0, limit_usec);
	ps->memory_capped = false;
	ps->phase = POLICY_PHASE_IDLE;
	if (rc == POLICY_CALL_ABANDONED) {
		policy_state_abandon(ps);
		*error = xasprintf("%s: time budget exceeded while loading "
		    "(the top level ran over %llu ms)", ps->policy_file,
		    (unsigned long long)(limit_usec / 1000));
		goto fail;
	}
	if (rc != 0) {
		*error = rc == LUA_ERRMEM ? xasprintf("%s: not enough memory "
		    "while loading (lua_memory_limit is %zu bytes)",
		    ps->policy_file, ps->memory_limit) :
		    policy_state_error(ps, "");
		goto fail;
	}
	free(chunk_name);
	return ps;

fail:
	free(chunk_name);
	policy_state_free(ps);
	return NULL;
}

void
policy_state_abandon(struct policy_state *ps)
{
	if (ps->L == NULL)
		return;
	ps->abandoned = true;
	ps->L = NULL;
	while (ps->blocks->next != ps->blocks) {
		struct policy_block *b = ps->blocks->next;

		policy_block_unlink(ps, b);
		free(b);
	}
}

void
policy_state_free(struct policy_state *ps)
{
	if (ps == NULL)
		return;
	if (ps->L != NULL)
		lua_close(ps->L);
	SLUICE_ASSERT(ps->blocks->next == ps->blocks);
	free(ps->blocks);
	policy_declarations_free(ps);
	free(ps->policy_file);
	free(ps->search_path);
	free(ps);
}
